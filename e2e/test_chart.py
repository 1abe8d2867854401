"""The Helm chart: it lints, renders a restricted operator Deployment, and its RBAC has no wildcards
and, in namespaced mode, nothing cluster-wide but discovery. That its rules are exactly what the
operator uses is proven from the audit log: e2e/test_zz_least_privilege.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keelson.devstack.building import binary_paths
from keelson.devstack.stack import LocalStack

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[1] / "charts" / "keelson"


def _helm(*args: str) -> str:
    helm = binary_paths()["helm"]
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _rendered(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "keelson", str(CHART), "-n", "keelson-system", "--kube-version", "v1.36.3"]
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(_helm(*args)) if d]


def test_chart_lints(stack: LocalStack) -> None:
    _helm("lint", str(CHART), "--strict")


def test_operator_deployment_is_restricted(stack: LocalStack) -> None:
    (dep,) = [d for d in _rendered() if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "keelson-operator" and pod["securityContext"]["runAsNonRoot"]
    container = pod["containers"][0]
    assert container["args"][:2] == ["operator", "run"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    assert not [d for d in _rendered("operator.deploy=false") if d["kind"] == "Deployment"]


def _rules(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (v, g, r) for rule in doc["rules"] for v in rule["verbs"] for g in rule["apiGroups"] for r in rule["resources"]
    ]


def test_rbac_has_no_wildcards_and_never_writes_a_platforms_spec(stack: LocalStack) -> None:
    # Whether each rule is needed, and enough, is proven from the audit log of the whole cluster
    # suite: e2e/test_zz_least_privilege.py. This is what must hold whatever the operator uses.
    for sets in ((), ("operator.watchNamespaces={a,b}",)):
        for role in (d for d in _rendered(*sets) if d["kind"] in ("Role", "ClusterRole")):
            rules = _rules(role)
            assert not [r for r in rules if "*" in r], role["metadata"]
            # Finalizers are patched; spec is the user's (or Git's), never written by the operator.
            platform_verbs = {v for v, _, r in rules if r == "microserviceplatforms"}
            assert platform_verbs <= {"list", "watch", "patch"}, role["metadata"]


def test_namespaced_mode_grants_nothing_cluster_wide_but_discovery(stack: LocalStack) -> None:
    docs = _rendered("operator.watchNamespaces={a,b}")
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert {(g, r) for _, g, r in _rules(cluster_role)} == {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
    }
    assert {v for v, _, _ in _rules(cluster_role)} == {"list", "watch"}
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    assert set(roles) == bindings == {"a", "b"}
    # The same rules as cluster mode's, less the cluster-scoped ones.
    (cluster_mode,) = [d for d in _rendered() if d["kind"] == "ClusterRole"]
    namespaced = {r for r in _rules(cluster_mode) if r[2] != "customresourcedefinitions"}
    assert set(_rules(roles["a"])) == namespaced
