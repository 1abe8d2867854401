"""The operator against a real control plane, with only the chart's permissions."""

from __future__ import annotations

import copy
import signal
import time
from typing import Any

import pytest

from e2e.kube import Kube, eventually, operator_writes, reconcile_count, utcnow
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.devstack.stack import LocalStack
from keelson.render import RenderContext, render_platform
from tests.cases.invalid_platforms import INVALID, big_platform, invalid_platform
from tests.cases.invalid_platforms import workloads_example as example

pytestmark = pytest.mark.cluster

KINDS = ",".join(
    [
        "serviceaccounts",
        "configmaps",
        "services",
        "deployments",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
        "networkpolicies",
        "ingresses",
    ]
)


def _expected(doc: dict[str, Any], namespace: str) -> set[tuple[str, str]]:
    platform = MicroservicePlatform.from_object(doc)
    ctx = RenderContext(name=platform.metadata.name, namespace=namespace, spec=platform.spec)
    return {(o["kind"], o["metadata"]["name"]) for o in render_platform(ctx)}


def _children(kube: Kube, namespace: str, platform: str = "shop") -> dict[tuple[str, str], dict[str, Any]]:
    items = kube.list(KINDS, namespace, selector=f"keelson.dev/platform={platform}")
    return {(o["kind"], o["metadata"]["name"]): o for o in items}


def _ready(kube: Kube, namespace: str, name: str = "shop") -> dict[str, Any] | None:
    cond = kube.condition(name, namespace)
    return cond if cond and cond["status"] == "True" else None


def _apply_ready(kube: Kube, namespace: str, doc: dict[str, Any], timeout: float = 90) -> None:
    kube.apply(namespace, doc)
    eventually(lambda: _ready(kube, namespace, doc["metadata"]["name"]), timeout=timeout, what="Ready=True")


def _svc(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in doc["spec"]["services"] if s["name"] == name)


def test_example_becomes_ready_with_every_child(kube: Kube, namespace: str) -> None:
    doc = example()
    _apply_ready(kube, namespace, doc)
    msp = kube.get("msp", "shop", namespace)
    assert msp is not None
    status = msp["status"]
    assert status["observedGeneration"] == msp["metadata"]["generation"]
    assert status["readyServices"] == "5/5"
    assert {"Ready", "WorkloadsReady", "RoutesReady", "TopicsReady", "Paused"} <= {
        c["type"] for c in status["conditions"]
    }
    assert status["sizing"]["maxReplicas"] == 7 and status["effectiveDefaults"]["resilience"]["timeoutSeconds"] == 5
    children = _children(kube, namespace)
    assert set(children) == _expected(doc, namespace)
    for obj in children.values():
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == msp["metadata"]["uid"] and owner["controller"] is True
        managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
        assert ("keelson-operator", "Apply") in managers, managers
    pods = kube.list("pods", namespace)
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == sum(s["readyReplicas"] for s in status["services"]) >= 5 * 3
    assert {p["spec"]["nodeName"] for p in running} <= {"kwok-node-0", "kwok-node-1", "kwok-node-2"}
    events = kube.list("events", namespace)
    assert any(e["involvedObject"]["kind"] == "MicroservicePlatform" and e["reason"] == "Ready" for e in events)


@pytest.mark.parametrize(("case", "mutation", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_platforms_are_rejected_at_admission(kube: Kube, case: str, mutation: Any, fragment: str) -> None:
    doc = invalid_platform(mutation, name=f"bad-{case}")
    proc = kube.apply("default", doc, check=False)
    assert proc.returncode != 0, f"{case} was accepted"
    assert fragment.lower() in proc.stderr.lower(), proc.stderr
    assert "spec." in proc.stderr or "metadata.name" in proc.stderr  # the message names the field


def test_domain_is_immutable(kube: Kube, namespace: str) -> None:
    kube.apply(namespace, example())
    proc = kube.run(
        "patch", "msp", "shop", "-n", namespace, "--type=merge", "-p", '{"spec":{"domain":"retail"}}', check=False
    )
    assert proc.returncode != 0 and "domain is immutable" in proc.stderr


def test_services_added_removed_and_calls_followed(kube: Kube, namespace: str) -> None:
    doc = example()
    _apply_ready(kube, namespace, doc)
    changed = copy.deepcopy(doc)
    changed["spec"]["services"] = [s for s in changed["spec"]["services"] if s["name"] != "notifications"]
    _svc(changed, "gateway")["calls"] = ["users", "orders"]
    changed["spec"]["services"].append({"name": "shipping", "image": "registry.example/shipping:1.0", "port": 9000})
    _svc(changed, "payments")["calls"] = ["shipping"]
    kube.apply(namespace, changed)
    expected = _expected(changed, namespace)
    eventually(lambda: set(_children(kube, namespace)) == expected, timeout=60, what="children follow the spec")

    def payments_egress_to_shipping() -> bool:
        policy = kube.get("networkpolicy", "payments", namespace) or {}
        targets = [
            p["podSelector"]["matchExpressions"][0]["values"]
            for rule in policy["spec"]["egress"]
            for p in rule.get("to", [])
            if "matchExpressions" in p.get("podSelector", {})
        ]
        shipping = kube.get("networkpolicy", "shipping", namespace) or {}
        sources = [
            p["podSelector"]["matchExpressions"][0]["values"]
            for rule in shipping.get("spec", {}).get("ingress", [])
            for p in rule["from"]
        ]
        return targets == [["shipping"]] and sources == [["payments"]]

    eventually(payments_egress_to_shipping, timeout=30, what="NetworkPolicies follow calls")
    _apply_ready(kube, namespace, changed)


def test_drift_is_repaired_and_foreign_fields_are_left_alone(kube: Kube, namespace: str, stack: LocalStack) -> None:
    _apply_ready(kube, namespace, example())
    # A deleted Deployment comes back.
    old_uid = kube.get("deployment", "orders", namespace)["metadata"]["uid"]  # type: ignore[index]
    kube.run("delete", "deployment", "orders", "-n", namespace, "--wait=false")
    eventually(
        lambda: (d := kube.get("deployment", "orders", namespace)) and d["metadata"]["uid"] != old_uid,
        timeout=15,
        what="deleted Deployment restored",
    )
    # An edited Service is put back, while someone else's annotation on it stays.
    kube.run(
        "patch",
        "service",
        "payments",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"metadata":{"annotations":{"team.example/owner":"payments"}},'
        '"spec":{"selector":{"app.kubernetes.io/name":"hijacked"}}}',
    )
    eventually(
        lambda: (
            (kube.get("service", "payments", namespace) or {})["spec"]["selector"].get("app.kubernetes.io/name")
            == "payments"
        ),
        timeout=15,
        what="edited Service restored",
    )
    svc = kube.get("service", "payments", namespace)
    assert svc is not None and svc["metadata"]["annotations"]["team.example/owner"] == "payments"
    # Scaling a Deployment under an HPA is the HPA's business: the operator does not fight it.
    eventually(lambda: _ready(kube, namespace), timeout=60, what="Ready again")
    since = utcnow()
    kube.run("scale", "deployment", "users", "-n", namespace, "--replicas=5")
    eventually(
        lambda: (kube.get("deployment", "users", namespace) or {}).get("status", {}).get("readyReplicas") == 5,
        timeout=30,
        what="users at 5 replicas",
    )
    # The operator reconciles after the scale event (status reports the new size): that is when it
    # would fight, if it did.
    eventually(
        lambda: any(
            svc["name"] == "users" and svc["desiredReplicas"] == 5
            for svc in (kube.get("msp", "shop", namespace) or {})["status"]["services"]
        ),
        timeout=30,
        what="operator saw the scale",
    )
    assert kube.get("deployment", "users", namespace)["spec"]["replicas"] == 5  # type: ignore[index]
    fights = [
        w
        for w in operator_writes(stack.audit_log, since=since, namespace=namespace)
        if w["objectRef"]["resource"] == "deployments"
    ]
    assert fights == []


def test_argocd_tracking_metadata_is_not_copied(kube: Kube, namespace: str) -> None:
    doc = example()
    doc["metadata"]["labels"] = {"app.kubernetes.io/instance": "shop-app", "argocd.argoproj.io/instance": "x"}
    doc["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "shop-app:keelson.dev/MicroservicePlatform:ns/shop"
    }
    _apply_ready(kube, namespace, doc)
    for obj in _children(kube, namespace).values():
        meta = obj["metadata"]
        keys = set(meta.get("labels", {})) | set(meta.get("annotations", {}))
        assert "app.kubernetes.io/instance" not in keys
        assert not any(k.startswith("argocd.argoproj.io") for k in keys), obj["metadata"]["name"]


def test_pause_stops_reconciliation(kube: Kube, namespace: str, stack: LocalStack) -> None:
    _apply_ready(kube, namespace, example())
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/reconcile=paused")
    eventually(
        lambda: (c := kube.condition("shop", namespace, "Paused")) and c["status"] == "True",
        timeout=15,
        what="Paused=True",
    )
    before = reconcile_count(stack.ports["operator-metrics"])
    kube.run("delete", "configmap", "users-config", "-n", namespace)
    # The deletion wakes the operator; once it has reconciled since, the ConfigMap must still be gone.
    eventually(lambda: reconcile_count(stack.ports["operator-metrics"]) > before, timeout=30, what="a reconcile")
    assert kube.get("configmap", "users-config", namespace) is None
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/reconcile-")
    eventually(lambda: kube.get("configmap", "users-config", namespace), timeout=15, what="restored after unpause")


def test_zero_writes_when_idle(kube: Kube, namespace: str, stack: LocalStack) -> None:
    _apply_ready(kube, namespace, example())
    # Let the HPAs settle the Deployments at their lower bound, then watch for a resync period.
    eventually(
        lambda: (
            _ready(kube, namespace)
            and all(d["status"].get("readyReplicas") == 3 for d in kube.list("deployments", namespace))
        ),
        timeout=60,
        what="settled",
    )
    time.sleep(2)
    since = utcnow()
    time.sleep(65)  # longer than the operator's 60 s resync: the idle period itself is the measurement
    # This platform's namespace: earlier tests' namespaces may still be going away meanwhile.
    writes = operator_writes(stack.audit_log, since=since, namespace=namespace)
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]


def test_platform_deletion_collects_children(kube: Kube, namespace: str) -> None:
    _apply_ready(kube, namespace, example())
    kube.run("delete", "msp", "shop", "-n", namespace, "--wait=true", "--timeout=60s")
    eventually(lambda: not _children(kube, namespace), timeout=60, what="children garbage-collected")


def test_sigkill_mid_converge_then_recover(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = big_platform(50)
    kube.apply(namespace, doc)
    eventually(lambda: len(kube.list("deployments", namespace)) >= 5, timeout=60, what="converging started")
    assert stack.stop_operator(sig=signal.SIGKILL)
    stack.start_operator()
    eventually(lambda: _ready(kube, namespace, "big"), timeout=240, interval=2, what="Ready after restart")
    children = _children(kube, namespace, "big")
    assert set(children) == _expected(doc, namespace)  # nothing missing, nothing left over
    assert len(kube.list("deployments", namespace)) == 50
    assert len(kube.list("replicasets", namespace)) == 50  # no Deployment was re-created or re-rolled


def test_operator_survives_an_apiserver_restart(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = example()
    _apply_ready(kube, namespace, doc)
    stack.restart_apiserver()
    assert stack.operator_alive()
    changed = copy.deepcopy(doc)
    changed["spec"]["services"].append({"name": "search", "image": "registry.example/search:1"})
    kube.apply(namespace, changed)
    eventually(lambda: kube.get("deployment", "search", namespace), timeout=90, what="change after restart")
    eventually(lambda: _ready(kube, namespace), timeout=90, what="Ready after restart")
