"""The Helm chart: it lints, renders a restricted operator Deployment, and its RBAC grants exactly
the resources the operator's code touches (a new child kind without a rule fails here)."""

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
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    assert not [d for d in _rendered("operator.deploy=false") if d["kind"] == "Deployment"]


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
