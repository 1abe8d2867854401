"""Prometheus Operator integration against a real API server: the ServiceMonitor and PrometheusRule
of `spec.observability.metrics` under the Prometheus Operator's real CRD schemas, owned, repaired
and pruned like every child; and, before those CRDs exist, the truth about their absence.

The CRDs are cluster-wide and never removed (other tests and stacks share them), so the test of a
cluster without them runs first and only on a stack that has never had them; elsewhere it is
skipped, and tests/unit/test_monitoring_render.py covers the same condition logic.
"""

from __future__ import annotations

import copy
import re
import subprocess
from typing import Any

import pytest
import yaml

from e2e.conftest import established
from e2e.kube import Kube, eventually, operator_writes, reconcile_count, third_party_crds, utcnow
from e2e.test_chart import _rendered as chart_objects
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller import metrics as operator_metrics
from keelson.devstack.stack import LocalStack
from keelson.render import RenderContext
from keelson.render.prometheusrule import render_prometheus_rule
from keelson.render.servicemonitor import render_service_monitor
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

CRDS = {
    "prometheus-servicemonitor.yaml": "servicemonitors.monitoring.coreos.com",
    "prometheus-prometheusrule.yaml": "prometheusrules.monitoring.coreos.com",
    # Only for the chart's operator PodMonitor (the platforms use ServiceMonitors).
    "prometheus-podmonitor.yaml": "podmonitors.monitoring.coreos.com",
}
SM, RULE = "servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"
METRICS = {"serviceMonitor": True, "alerts": True, "interval": "15s", "labels": {"release": "kube-prometheus-stack"}}


def _platform(**metrics: Any) -> dict[str, Any]:
    doc = workloads_example()
    doc["spec"]["observability"] = {"metrics": metrics or METRICS}
    return doc


def _condition(kube: Kube, namespace: str, ctype: str) -> dict[str, Any]:
    return kube.condition("shop", namespace, ctype) or {}


def _crds_installed(kube: Kube) -> bool:
    return kube.run("get", "crd", SM, check=False).returncode == 0


def _rendered(doc: dict[str, Any], namespace: str) -> RenderContext:
    platform = MicroservicePlatform.from_object(doc)
    return RenderContext(name="shop", namespace=namespace, spec=platform.spec)


def test_without_the_crds_the_platform_is_ready_and_says_what_is_missing(kube: Kube, namespace: str) -> None:
    if _crds_installed(kube):
        pytest.skip(
            "this stack already has the Prometheus Operator CRDs (cluster-wide, installed by an earlier run "
            "of this module and never removed); the condition logic is unit-tested in "
            "tests/unit/test_monitoring_render.py"
        )
    kube.apply(namespace, _platform())

    def reported() -> dict[str, Any] | None:
        cond = _condition(kube, namespace, "MonitoringReady")
        return cond if cond.get("reason") == "MonitoringKindUnavailable" else None

    cond = eventually(reported, timeout=60, what="MonitoringReady=False MonitoringKindUnavailable")
    assert cond["status"] == "False"
    assert "ServiceMonitor, PrometheusRule" in cond["message"] and "CRDs" in cond["message"]
    # Optional monitoring does not hold the platform back.
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=90, what="Ready=True")
    assert _condition(kube, namespace, "WorkloadsReady")["status"] == "True"


@pytest.fixture(scope="module")
def prometheus_crds(kube: Kube) -> None:
    for file, crd in CRDS.items():
        proc = kube.run("create", "-f", str(third_party_crds() / file), check=False)
        assert proc.returncode == 0 or "AlreadyExists" in proc.stderr, proc.stderr
        eventually(lambda crd=crd: established(kube, crd), timeout=60, what=f"CRD {crd} established")
    # No operator restart: CRDs of one group created while it runs is the case kopf can race on
    # (controller/rescanning.py); the test below needs both kinds watched.


def test_service_monitor_and_rule_are_applied_owned_repaired_and_pruned(
    kube: Kube, namespace: str, stack: LocalStack, prometheus_crds: None
) -> None:
    doc = _platform()
    kube.apply(namespace, doc)
    sm = eventually(lambda: kube.get(SM, "shop-services", namespace), timeout=60, what="ServiceMonitor")
    rule = eventually(lambda: kube.get(RULE, "shop-alerts", namespace), timeout=60, what="PrometheusRule")
    msp = kube.get("msp", "shop", namespace)
    assert msp is not None
    ctx = _rendered(doc, namespace)
    # Accepted by the real schemas as rendered: nothing pruned, nothing defaulted away.
    expected_sm, expected_rule = render_service_monitor(ctx), render_prometheus_rule(ctx)
    assert expected_sm is not None and expected_rule is not None
    assert sm["spec"] == expected_sm["spec"]
    assert rule["spec"] == expected_rule["spec"]
    for obj in (sm, rule):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == msp["metadata"]["uid"] and owner["controller"] is True
        labels = obj["metadata"]["labels"]
        assert labels["release"] == "kube-prometheus-stack" and labels["keelson.dev/platform"] == "shop"
    assert sm["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "scheme": "http", "interval": "15s"}
    # The selector finds exactly the platform's Services, whose port it names.
    selector = ",".join(f"{k}={v}" for k, v in sm["spec"]["selector"]["matchLabels"].items())
    services = kube.list("services", namespace, selector=selector)
    names = sorted(s["metadata"]["name"] for s in services)
    assert names == ["gateway", "notifications", "orders", "payments", "users"]
    assert all(s["spec"]["ports"][0]["name"] == "http" for s in services)
    eventually(
        lambda: _condition(kube, namespace, "MonitoringReady").get("reason") == "MonitoringApplied",
        timeout=30,
        what="MonitoringReady=True",
    )
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=90, what="Ready")

    # Silent when idle: a reconcile of the unchanged platform rewrites neither object.
    since = utcnow()
    before = reconcile_count(stack.ports["operator-metrics"])
    kube.run("annotate", "msp", "shop", "-n", namespace, "test.example/poke=1")  # wakes a reconcile
    eventually(lambda: reconcile_count(stack.ports["operator-metrics"]) > before + 1, timeout=30, what="reconciles")
    writes = [
        w["objectRef"]["resource"]
        for w in operator_writes(stack.audit_log, since=since, namespace=namespace)
        if w["objectRef"]["resource"] in ("servicemonitors", "prometheusrules")
    ]
    assert writes == []

    # Drift: a deleted ServiceMonitor comes back; a hand-edited rule is put back.
    kube.run("delete", SM, "shop-services", "-n", namespace)

    def restored() -> dict[str, Any] | None:
        obj = kube.get(SM, "shop-services", namespace)
        return obj if obj and obj["metadata"]["uid"] != sm["metadata"]["uid"] else None

    assert eventually(restored, timeout=30, what="ServiceMonitor restored")["spec"] == expected_sm["spec"]
    edited = copy.deepcopy(rule["spec"])
    edited["groups"][0]["rules"] = edited["groups"][0]["rules"][:1]
    kube.run("patch", RULE, "shop-alerts", "-n", namespace, "--type=merge", "-p", yaml.safe_dump({"spec": edited}))
    eventually(
        lambda: (kube.get(RULE, "shop-alerts", namespace) or {}).get("spec") == expected_rule["spec"],
        timeout=30,
        what="PrometheusRule repaired",
    )

    # Turned off: both go, and the condition says nothing is requested.
    off = copy.deepcopy(doc)
    off["spec"]["observability"] = {"metrics": {"serviceMonitor": False, "alerts": False}}
    kube.apply(namespace, off)
    eventually(
        lambda: kube.get(SM, "shop-services", namespace) is None and kube.get(RULE, "shop-alerts", namespace) is None,
        timeout=30,
        what="monitoring objects pruned",
    )
    eventually(
        lambda: _condition(kube, namespace, "MonitoringReady").get("reason") == "NotRequested",
        timeout=30,
        what="MonitoringReady NotRequested",
    )


def test_the_charts_operator_monitoring_is_accepted_and_uses_the_operators_metrics(
    kube: Kube, prometheus_crds: None
) -> None:
    docs = chart_objects(
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.labels.release=kube-prometheus-stack",
    )
    monitoring = [d for d in docs if d["kind"] in ("PodMonitor", "PrometheusRule")]
    assert sorted(d["kind"] for d in monitoring) == ["PodMonitor", "PrometheusRule"]
    proc = subprocess.run(
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", "create", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump_all(monitoring),
        text=True,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (rule,) = [d for d in monitoring if d["kind"] == "PrometheusRule"]
    exported = set()
    for metric in (operator_metrics.RECONCILE_ERRORS, operator_metrics.PLATFORMS):
        for family in metric.describe():
            exported.add(family.name + ("_total" if family.type == "counter" else ""))
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    assert "keelson_reconcile_errors_total" in exprs
    assert set(re.findall(r"\b(keelson_[a-z0-9_]+)\b", exprs)) <= exported
    # Off by default: the chart renders no monitoring object unless asked.
    assert not [d for d in chart_objects() if d["kind"] in ("PodMonitor", "PrometheusRule")]
