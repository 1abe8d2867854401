"""The write-loop guard on the real API server: a MutatingAdmissionPolicy (someone else's
mutation, as a webhook would be) rewrites a field the operator owns on every write, so every
pass sees drift. The operator must stop, say which field, and spare the API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.kube import Kube, eventually, operator_metric, operator_writes, utcnow
from keelson.controller.loopguard import LoopGuard
from keelson.devstack.stack import LocalStack

pytestmark = pytest.mark.cluster

FIELD = "KEELSON_HTTP_TIMEOUT_SECONDS"


def _policy(namespace: str) -> list[dict[str, Any]]:
    name = f"keelson-test-fight-{namespace}"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "matchConditions": [
                    {
                        "name": "keelson-children",
                        "expression": "has(object.metadata.labels) && 'keelson.dev/platform' in object.metadata.labels",
                    }
                ],
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {"expression": f'Object{{data: {{"{FIELD}": "99"}}}}'},
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        },
    ]


@pytest.fixture
def fighting_namespace(kube: Kube, namespace: str) -> Iterator[str]:
    docs = _policy(namespace)
    kube.run("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def active() -> bool:
        return _mutated(kube, namespace)

    eventually(active, timeout=30, what="the mutating policy in force")
    yield namespace
    remove_policy(kube, namespace)
    eventually(lambda: not active(), timeout=30, what="the mutating policy gone")


def remove_policy(kube: Kube, namespace: str) -> None:
    for doc in _policy(namespace):
        kube.run("delete", doc["kind"].lower(), doc["metadata"]["name"], check=False)


def _mutated(kube: Kube, namespace: str) -> bool:
    probe = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "probe", "labels": {"keelson.dev/platform": "probe"}},
        "data": {FIELD: "5"},
    }
    proc = kube.run(
        "apply", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-", stdin=json.dumps(probe), check=False
    )
    return proc.returncode == 0 and json.loads(proc.stdout)["data"][FIELD] == "99"


def _platform() -> dict[str, Any]:
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": "loopy"},
        "spec": {
            "domain": "loops",
            "defaults": {"autoscaling": {"enabled": False}},
            "services": [{"name": "api", "image": "registry.example/app:1", "replicas": 1}],
        },
    }


def _ready(kube: Kube, namespace: str) -> dict[str, Any] | None:
    return kube.condition("loopy", namespace)


def test_a_field_rewritten_on_every_write_trips_the_guard(
    kube: Kube, stack: LocalStack, fighting_namespace: str
) -> None:
    namespace = fighting_namespace
    since = utcnow()
    kube.apply(namespace, _platform())

    def tripped() -> dict[str, Any] | None:
        cond = _ready(kube, namespace)
        return cond if cond and cond["reason"] == "WriteLoop" else None

    cond = eventually(tripped, timeout=60, what="Ready=False WriteLoop")
    assert cond["status"] == "False"
    assert "ConfigMap/api-config" in cond["message"] and f"data.{FIELD}" in cond["message"], cond["message"]

    def config_map_writes() -> list[dict[str, Any]]:
        return [
            w
            for w in operator_writes(stack.audit_log, since=since, namespace=namespace)
            if w["objectRef"]["resource"] == "configmaps" and w["objectRef"].get("name") == "api-config"
        ]

    allowed = LoopGuard().max_writes
    assert 0 < len(config_map_writes()) <= allowed
    # Over an idle window spanning resyncs (the e2e operator resyncs every 10 s), no more writes.
    metrics_seen = eventually(
        lambda: _loops_metric(stack) or None, timeout=30, what="keelson_write_loops_total counted"
    )
    assert metrics_seen >= 1
    _wait_resyncs(stack, 2)
    assert len(config_map_writes()) <= allowed
    events = json.loads(kube.run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert [e["reason"] for e in events if e["involvedObject"]["name"] == "loopy"].count("WriteLoop") == 1
    # The rest of the platform was applied: the guard stops one object, not the platform.
    assert kube.get("deployment", "api", namespace) is not None

    # The cause removed and the platform changed: the guard lets go and the platform converges.
    remove_policy(kube, namespace)
    eventually(lambda: not _mutated(kube, namespace), timeout=30, what="the mutating policy gone")
    doc = _platform()
    doc["spec"]["services"][0]["env"] = [{"name": "FIXED", "value": "1"}]
    kube.apply(namespace, doc)
    eventually(lambda: (c := _ready(kube, namespace)) and c["status"] == "True", timeout=90, what="Ready after the fix")
    config = kube.get("configmap", "api-config", namespace)
    assert config is not None and config["data"][FIELD] == "5"


def _loops_metric(stack: LocalStack) -> float:
    return operator_metric(stack.ports["operator-metrics"], "keelson_write_loops_total")


def _wait_resyncs(stack: LocalStack, count: int) -> None:
    from e2e.kube import reconcile_count

    start = reconcile_count(stack.ports["operator-metrics"])
    eventually(
        lambda: reconcile_count(stack.ports["operator-metrics"]) >= start + count,
        timeout=60,
        what=f"{count} more reconcile passes",
    )
