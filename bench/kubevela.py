"""The peer of bench/converge.py: KubeVela's controller (vela-core) on the same local stack.

vela-core is built from the Go module proxy once and cached like the stack's own binaries
(``keelson.devstack.building.KUBEVELA``: ``~/.cache/keelson/bin/kubevela-<version>/``), with its
CRDs and the definitions used here beside it. It is never part of the product or the test stack:
only this benchmark installs its CRDs and runs it, as the cluster admin, from KUBECONFIG.

Two Applications stand for ``big_platform(n)``:

- ``equal`` (equal work, the comparison that counts): the very objects Keelson renders for the
  platform (``keelson render``: every Deployment, Service, HPA, PodDisruptionBudget,
  NetworkPolicy, ServiceAccount and ConfigMap, and the default-deny policy), as raw objects of
  KubeVela's ``k8s-objects`` components: one component per service holding its 7 objects (the
  Deployment first: the component's workload), one more for the platform-wide policy. Only the
  ``app.kubernetes.io/managed-by`` label is changed (to ``kubevela``), so that Keelson's filtered
  watches do not cache them; nothing that changes the work.
- ``webservice`` (the first, lighter comparison): one ``webservice`` component per service (a
  Deployment with the same image, CPU and memory, and a ClusterIP Service on port 8080), the
  ``scaler`` trait at 1 replica and the ``hpa`` trait at 1 to 3 replicas. That is 3 objects per
  service against Keelson's 7: KubeVela has no built-in ConfigMap of resilience settings,
  ServiceAccount, PodDisruptionBudget or call-graph NetworkPolicy.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import measuring
from e2e.kube import WRITE_VERBS, Kube, eventually
from keelson.devstack import building

NAMESPACE = building.KUBEVELA_SYSTEM_NAMESPACE
# How vela-core's requests identify themselves in the audit log (it authenticates as the admin).
USER_AGENTS = ("kubevela/", "vela-core/")
SETTLE_SECONDS = 5.0


def ensure_built(progress: Any = print) -> Path:
    """The directory of the cached vela-core build; builds it (5-10 min) on a miss."""
    return building.ensure_component(building.KUBEVELA, progress)


def install(kube: Kube, directory: Path) -> None:
    """Its CRDs (server-side: they are too big for the last-applied annotation) and definitions."""
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(directory / building.KUBEVELA_CRDS), timeout=120)
    kube.run("wait", "--for=condition=Established", "--timeout=60s", "crd/applications.core.oam.dev")
    if kube.run("get", "namespace", NAMESPACE, check=False).returncode != 0:
        kube.namespace(NAMESPACE)
    kube.run("apply", "--server-side", "-n", NAMESPACE, "-f", str(directory / building.KUBEVELA_DEFS), timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VelaCore:
    """One vela-core process, started fresh so that its peak RSS is this run's."""

    def __init__(self, directory: Path, kubeconfig: Path, log: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.health_port = _free_port()
        metrics_port = _free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [
                str(directory / "vela-core"),
                "--use-webhook=false",
                "--enable-leader-election=false",
                f"--metrics-addr=127.0.0.1:{metrics_port}",
                f"--health-addr=127.0.0.1:{self.health_port}",
                *extra_args,
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        eventually(self._healthy, timeout=120, interval=0.5, what="vela-core /readyz")
        time.sleep(SETTLE_SECONDS)  # /readyz is a ping: let its informers list before anything is timed

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"vela-core exited with {self.proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def rss_peak_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def application(services: int, name: str = "bench") -> dict[str, Any]:
    """The Application equivalent to ``big_platform(services)`` (see the module's docstring)."""
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {
            "components": [
                {
                    "name": f"svc-{i:03d}",
                    "type": "webservice",
                    "properties": {
                        "image": "registry.example/app:1",
                        "cpu": "100m",
                        "memory": "128Mi",
                        "ports": [{"port": 8080, "expose": True}],
                    },
                    "traits": [
                        {"type": "scaler", "properties": {"replicas": 1}},
                        {"type": "hpa", "properties": {"min": 1, "max": 3}},
                    ],
                }
                for i in range(services)
            ]
        },
    }


MANAGED_BY = "app.kubernetes.io/managed-by"
NAME_LABEL = "app.kubernetes.io/name"


def _relabelled(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without its namespace (the Application's is used) and managed by kubevela."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    out["metadata"].pop("namespace", None)
    for meta in (out["metadata"], out.get("spec", {}).get("template", {}).get("metadata")):
        if meta and MANAGED_BY in (meta.get("labels") or {}):
            meta["labels"][MANAGED_BY] = "kubevela"
    return out


def equal_work_application(objects: list[dict[str, Any]], name: str = "bench") -> dict[str, Any]:
    """An Application whose ``k8s-objects`` components make exactly ``objects`` (Keelson's render
    of the platform): one component per service, its Deployment first; one for the rest."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        service = (obj["metadata"].get("labels") or {}).get(NAME_LABEL)
        groups.setdefault(service or "", []).append(_relabelled(obj))
    components = []
    for service, members in groups.items():
        members.sort(key=lambda o: o["kind"] != "Deployment")  # stable: the workload first
        components.append({"name": service or "platform", "type": "k8s-objects", "properties": {"objects": members}})
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {"components": components},
    }


def application_objects(app: dict[str, Any]) -> int:
    """How many objects an Application's components render (k8s-objects: all of their objects)."""
    total = 0
    for component in app["spec"]["components"]:
        if component["type"] == "k8s-objects":
            total += len(component["properties"]["objects"])
        else:  # webservice with scaler and hpa: Deployment, Service, HPA
            total += 3
    return total


def application_running(kube: Kube, namespace: str, name: str = "bench") -> bool:
    app = kube.get("application", name, namespace)
    return bool(app and app.get("status", {}).get("status") == "running")


def is_vela(event: dict[str, Any]) -> bool:
    return bool(event.get("userAgent", "").startswith(USER_AGENTS))


def writes(audit_log: Path, *, since: str, until: str | None = None) -> tuple[int, int]:
    """vela-core's write requests in the audit log in the window: (real writes, dry runs)."""
    real, dry, _ = write_breakdown(audit_log, since=since, until=until)
    return real, dry


def write_breakdown(audit_log: Path, *, since: str, until: str | None = None) -> tuple[int, int, Counter[str]]:
    """(real writes, dry runs, real writes by ``verb resource[/subresource]``) of vela-core."""
    real = dry = 0
    kinds: Counter[str] = Counter()
    for event in measuring.audit_events(audit_log, since=since):
        if until is not None and event["requestReceivedTimestamp"] >= until:
            continue
        if event["verb"] not in WRITE_VERBS or not is_vela(event):
            continue
        if "dryRun=" in event.get("requestURI", ""):
            dry += 1
        else:
            real += 1
            kinds[measuring.resource_key(event)] += 1
    return real, dry, kinds


def apply_application(kube: Kube, namespace: str, app: dict[str, Any]) -> None:
    """``kubectl create``: at 200 services the equal-work Application is about 1 MB, and a
    client-side apply would add as much again in its last-applied annotation."""
    kube.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(app), timeout=120)


def wait_converged(kube: Kube, namespace: str, deployments: int, timeout: float) -> dict[str, float | None]:
    """Seconds until every Deployment of the namespace is available, and until the Application is
    ``running`` (None for one not reached in ``timeout``): polled together, each on its own clock.
    ``ready_s`` is the later of the two, the moment both hold (KubeVela's ``running`` does not wait
    for a k8s-objects workload to be available)."""
    start = time.monotonic()
    out: dict[str, float | None] = {"available_s": None, "running_s": None, "ready_s": None}
    deadline = start + timeout
    while time.monotonic() < deadline and None in (out["available_s"], out["running_s"]):
        now = time.monotonic() - start
        if out["available_s"] is None and measuring.all_available(kube, [namespace], deployments):
            out["available_s"] = round(now, 1)
        if out["running_s"] is None and application_running(kube, namespace):
            out["running_s"] = round(now, 1)
        time.sleep(0.25)
    if out["available_s"] is not None and out["running_s"] is not None:
        out["ready_s"] = max(out["available_s"], out["running_s"])
    return out
