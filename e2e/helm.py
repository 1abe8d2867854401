"""Helm releases of the chart in the stack, and operators run from a Deployment's pod spec.

The stack installs the chart's CRD, ServiceAccount and RBAC with `kubectl apply` (not as a Helm
release) and runs the working tree's operator as that ServiceAccount. A release installed here
takes those objects over (`--take-ownership`); uninstalling it deletes the ServiceAccount and
RBAC (the CRD stays: `helm.sh/resource-policy: keep`), so `release` gives the stack back as it
found it: its chart objects re-applied and its operator restarted with a fresh token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from e2e.kube import Kube, eventually
from keelson.devstack import cluster, processes
from keelson.devstack.building import binary_paths
from keelson.devstack.kubeconfig import render_kubeconfig
from keelson.devstack.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "keelson"
RELEASE = "keelson"
NAMESPACE = cluster.KEELSON_NAMESPACE
KUBE_VERSION = "v1.36.3"


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The helm binary the stack built (~/.cache/keelson/bin/helm-*)."""
    config = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
    proc = subprocess.run(
        [str(binary_paths()["helm"]), *config, *args], capture_output=True, text=True, check=False, timeout=180
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
    return proc


def sets(values: Mapping[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def render(chart: Path = CHART, values: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(chart), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    return [d for d in yaml.safe_load_all(helm(*args, *sets(values or {})).stdout) if d]


def deployment(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def container_env(pod: dict[str, Any]) -> dict[str, str]:
    """The operator container's literal env (the downward API's entries, valueFrom, left out)."""
    return {e["name"]: e["value"] for e in pod["containers"][0].get("env", []) if "value" in e}


# kwok runs no process in the operator's pods, so the API server's calls to the webhook's Service
# would each wait out their timeout: releases here go without it unless a test asks for it (the
# stack's own operator serves admission on loopback; test_chart checks what the chart renders).
WITHOUT_WEBHOOK = {"webhook.enabled": "false"}


def release_values(chart: Path, values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values a release here is installed with (and a local operator given the env of)."""
    if "\nwebhook:" in (chart / "values.yaml").read_text():  # charts from before the webhook have no such value
        return {**WITHOUT_WEBHOOK, **(values or {})}
    return dict(values or {})


def install(stack: LocalStack, chart: Path, values: Mapping[str, str] | None = None, *, upgrade: bool = False) -> None:
    verb = "upgrade" if upgrade else "install"
    values = release_values(chart, values)
    # --take-ownership: the objects the stack applied, or the CRD an 0.1.x release left from crds/.
    helm(verb, RELEASE, str(chart), "-n", NAMESPACE, "--take-ownership", "--wait", "--timeout=90s",
         *sets(values or {}), kubeconfig=stack.admin_kubeconfig)  # fmt: skip


def restore_stack(stack: LocalStack) -> None:
    """After `helm uninstall`: the stack's own install of the chart and its operator, as `up` makes them."""
    stack.stop_operator()
    stack.up(kafka=True, postgres=True, operator=True)


@contextmanager
def release(stack: LocalStack, chart: Path = CHART, values: Mapping[str, str] | None = None) -> Iterator[None]:
    """The chart installed as a Helm release; the stack's operator is stopped meanwhile (one
    operator at a time reconciles), and the stack restored afterwards."""
    stack.stop_operator()
    try:
        install(stack, chart, values)
        yield
    finally:
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", kubeconfig=stack.admin_kubeconfig, check=False)
        restore_stack(stack)


def operator_pod(kube: Kube, replicas: int = 1) -> dict[str, Any]:
    """One of the `replicas` operator pods kwok runs for the release, once there are that many
    (a previous release's may still be going away)."""

    def current() -> dict[str, Any] | None:
        pods = kube.list("pod", NAMESPACE, "app.kubernetes.io/name=keelson-operator")
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return live[0] if len(live) == replicas else None

    return eventually(current, timeout=60, what=f"{replicas} operator pod(s)")


def operator_kubeconfig(stack: LocalStack, path: Path) -> Path:
    """What an operator pod gets, as a kubeconfig: a fresh token of the chart's ServiceAccount."""
    token = cluster.create_operator_token(stack.kubectl(), duration="1h")
    user = f"system:serviceaccount:{NAMESPACE}:{cluster.OPERATOR_SERVICE_ACCOUNT}"
    path.write_text(
        render_kubeconfig(server=stack.apiserver_url, ca_pem=stack.pki.ca.cert.read_bytes(), user=user, token=token)
    )
    path.chmod(0o600)
    return path


def start_local_operator(
    stack: LocalStack,
    name: str,
    *,
    env: Mapping[str, str],
    ports: tuple[int, int],
    kubeconfig: Path,
    pythonpath: str | None = None,
) -> None:
    """An operator as a process of the stack (logs in <state>/logs/<name>.log): the working tree's,
    or with `pythonpath`, another commit's sources, first on the venv's path."""
    argv = [
        sys.executable,
        "-m",
        "keelson",
        "operator",
        "run",
        f"--metrics-port={ports[0]}",
        f"--health-port={ports[1]}",
    ]
    extra = {"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1,localhost"}
    if pythonpath is not None:
        extra["PYTHONPATH"] = pythonpath
    processes.start(stack.state_dir, name, argv, env={**_base_env(), **env, **extra}, cwd=ROOT)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KEELSON_", "KUBECONFIG", "PYTHONPATH"))}
