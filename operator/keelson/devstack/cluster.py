"""What the stack puts into its fresh cluster: kwok nodes, Keelson's chart, the operator's token."""

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

KEELSON_NAMESPACE = "keelson-system"
OPERATOR_SERVICE_ACCOUNT = "keelson-operator"
FIELD_MANAGER = "keelson-dev"
NODE_COUNT = 3
# Simulated nodes: room for the generated-platform tests, which keep dozens of platforms running
# at once with requests of up to 2 CPUs a pod (a cluster that is full is not what they test).
NODE_CAPACITY = {"cpu": "1000", "memory": "4Ti", "ephemeral-storage": "1Ti", "pods": "500"}


class KubectlError(RuntimeError):
    pass


class Kubectl:
    """kubectl against the stack, as its admin."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, args: Sequence[str], *, stdin: str | None = None, timeout: float = 60.0) -> str:
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def apply(self, manifests: str) -> str:
        """Server-side apply: large CRDs exceed the client-side last-applied annotation limit."""
        return self.run(
            ["apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", "-"],
            stdin=manifests,
        )

    def get_json(self, args: Sequence[str]) -> Any:
        return json.loads(self.run(["get", *args, "-o", "json"]))


def node_name(index: int) -> str:
    return f"kwok-node-{index}"


def node_manifest(name: str) -> dict[str, Any]:
    """A fake node kwok will keep Ready; untainted, so ordinary pods schedule onto it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/agent": "",
            },
        },
        "status": {
            "allocatable": dict(NODE_CAPACITY),
            "capacity": dict(NODE_CAPACITY),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
            "phase": "Running",
        },
    }


def nodes_yaml(count: int = NODE_COUNT) -> str:
    return yaml.safe_dump_all([node_manifest(node_name(i)) for i in range(count)], sort_keys=False)


def namespace_yaml(name: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def ready_nodes(nodes: dict[str, Any]) -> list[str]:
    """Names of the nodes in a NodeList whose Ready condition is True."""
    ready = []
    for node in nodes.get("items", []):
        conditions = node.get("status", {}).get("conditions", [])
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready.append(node["metadata"]["name"])
    return ready


def render_chart(helm: Path, chart: Path, kubernetes_version: str, values: dict[str, str] | None = None) -> str:
    """Keelson's chart without the operator Deployment: CRDs, ServiceAccount and RBAC only (and,
    given webhook.url, the webhook configuration calling the operator there)."""
    sets = [arg for key, value in (values or {}).items() for arg in ("--set-string", f"{key}={value}")]
    result = subprocess.run(
        [
            str(helm), "template", "keelson", str(chart),
            "--namespace", KEELSON_NAMESPACE,
            "--set", "operator.deploy=false",
            *sets,
            "--include-crds",
            # What .Capabilities.KubeVersion and the chart's kubeVersion check see offline.
            "--kube-version", kubernetes_version,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"helm template {chart} failed: {result.stderr.strip()}")
    return result.stdout


def create_operator_token(kubectl: Kubectl, duration: str = "48h") -> str:
    """A bound token for the chart's ServiceAccount, through the TokenRequest API."""
    token = kubectl.run(
        ["create", "token", OPERATOR_SERVICE_ACCOUNT, "-n", KEELSON_NAMESPACE, f"--duration={duration}"]
    ).strip()
    if not token:
        raise KubectlError("kubectl create token returned nothing")
    return token
