"""The Helm chart: it lints, renders a restricted operator Deployment of two replicas with leader
election, and its RBAC grants exactly the resources the operator's code touches (a new child kind
without a rule fails here)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keelson.devstack.building import binary_paths
from keelson.devstack.stack import LocalStack
from keelson.kube.resources import CHILD_KINDS, PLATFORM_KIND

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
    assert not [d for d in _rendered("operator.deploy=false") if d["kind"] == "Deployment"]


def test_two_replicas_one_leader(stack: LocalStack) -> None:
    docs = _rendered()
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    # Surged, never down to zero: the new pod is a ready standby before an old one goes.
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {env[k]["value"] for k in env if k.startswith("KEELSON_LEASE_")} == {"60", "40", "15"}
    # Distinct probes: liveness is kopf's, readiness ("could lead") is true on a standby too.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]


def test_lease_permissions_are_only_what_the_elector_uses(stack: LocalStack) -> None:
    for sets in ((), ("operator.deploy=false",)):  # the local stack installs the chart without the Deployment
        docs = _rendered(*sets)
        (role,) = [d for d in docs if d["kind"] == "Role"]
        (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "keelson-system"
        rules = {(tuple(r["verbs"]), tuple(r.get("resourceNames", ()))) for r in role["rules"]}
        assert rules == {(("create",), ()), (("get", "update", "watch"), ("keelson-operator",))}
        assert all(r["apiGroups"] == ["coordination.k8s.io"] and r["resources"] == ["leases"] for r in role["rules"])
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "keelson-operator", "namespace": "keelson-system"}
        ]


def test_rbac_matches_what_the_operator_uses(stack: LocalStack) -> None:
    (role,) = [d for d in _rendered() if d["kind"] == "ClusterRole"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] = set(rule["verbs"])
    child = {"get", "list", "watch", "create", "patch", "delete"}
    expected = {(k.group, k.plural): child for k in CHILD_KINDS}
    expected[(PLATFORM_KIND.group, PLATFORM_KIND.plural)] = {"get", "list", "watch", "patch"}
    expected[(PLATFORM_KIND.group, f"{PLATFORM_KIND.plural}/status")] = {"get", "update"}
    expected[("", "events")] = expected[("events.k8s.io", "events")] = {"create"}
    expected[("apiextensions.k8s.io", "customresourcedefinitions")] = {"get", "list", "watch"}
    assert granted == expected
    # Never broader than that: no wildcards, no update of platforms' spec. Secrets are there for the
    # database credentials (a child kind) and the admin Secret, which is only ever read (get).
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in role["rules"])
