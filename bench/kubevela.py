"""The peer of bench/converge.py: KubeVela's controller (vela-core) on the same local stack.

vela-core is built from the Go module proxy once and cached like the stack's own binaries
(``keelson.devstack.building.KUBEVELA``: ``~/.cache/keelson/bin/kubevela-<version>/``), with its
CRDs and the definitions used here beside it. It is never part of the product or the test stack:
only this benchmark installs its CRDs and runs it, as the cluster admin, from KUBECONFIG.

The Application equivalent to ``big_platform(n)``: one ``webservice`` component per service
(a Deployment with the same image, CPU and memory, and a ClusterIP Service on port 8080), the
``scaler`` trait at 1 replica and the ``hpa`` trait at 1 to 3 replicas. That is 3 objects per
service against Keelson's 7: KubeVela has no built-in ConfigMap of resilience settings,
ServiceAccount, PodDisruptionBudget or call-graph NetworkPolicy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

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

    def __init__(self, directory: Path, kubeconfig: Path, log: Path) -> None:
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


def application_running(kube: Kube, namespace: str, name: str = "bench") -> bool:
    app = kube.get("application", name, namespace)
    return bool(app and app.get("status", {}).get("status") == "running")


def writes(audit_log: Path, *, since: str, until: str | None = None) -> tuple[int, int]:
    """vela-core's write requests in the audit log in the window: (real writes, dry runs)."""
    real = dry = 0
    for event in measuring.audit_events(audit_log, since=since):
        if until is not None and event["requestReceivedTimestamp"] >= until:
            continue
        if event["verb"] not in WRITE_VERBS or not event.get("userAgent", "").startswith(USER_AGENTS):
            continue
        if "dryRun=" in event.get("requestURI", ""):
            dry += 1
        else:
            real += 1
    return real, dry


def apply_application(kube: Kube, namespace: str, services: int) -> None:
    kube.run("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(application(services)))


def wait_deployments(kube: Kube, namespace: str, expected: int, timeout: float) -> float:
    """Seconds until every Deployment of the namespace is available."""
    start = time.monotonic()

    def available() -> bool:
        deps = kube.list("deployments", namespace)
        return len(deps) == expected and all(
            d.get("status", {}).get("availableReplicas", 0) >= d["spec"].get("replicas", 1) >= 1 for d in deps
        )

    eventually(available, timeout=timeout, interval=0.25, what="KubeVela's Deployments available")
    return time.monotonic() - start
