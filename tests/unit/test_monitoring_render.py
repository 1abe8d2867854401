"""Prometheus Operator integration: the ServiceMonitor and PrometheusRule of
`spec.observability.metrics`, the scrape path through the NetworkPolicies, and how a missing CRD is
reported (condition MonitoringReady, which does not gate Ready)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.cache import DictCache
from keelson.controller.reconciler import Reconciler
from keelson.controller.status import MONITORING_READY, Observations, monitoring_condition
from keelson.kube.client import ApiError
from keelson.kube.resources import CHILD_KINDS, Kind
from keelson.render.prometheusrule import render_prometheus_rule
from keelson.render.servicemonitor import render_service_monitor
from keelson_services.messaging.metrics import MessagingMetrics
from keelson_services.observability.metrics import HttpClientMetrics, HttpServerMetrics
from tests.cases.invalid_platforms import example
from tests.unit.render_helpers import context, objects

# The sample names a metric family of each type exposes (prometheus-client's naming).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def _metrics(**metrics: Any):
    def mutate(spec: dict[str, Any]) -> None:
        spec["observability"] = {"metrics": metrics}

    return mutate


def _exported_metric_names() -> set[str]:
    """Every sample name the reference services' code defines."""
    registry = CollectorRegistry()
    HttpServerMetrics.create(registry)
    HttpClientMetrics.create(registry)
    MessagingMetrics.create(registry)
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(keelson_[a-z0-9_]+)\b", expr))


# -- ServiceMonitor ----------------------------------------------------------------------------------


def test_nothing_is_rendered_unless_asked() -> None:
    kinds = {kind for kind, _ in objects(context())}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    only_labels = objects(context(_metrics(labels={"release": "kube-prometheus-stack"})))
    assert not {kind for kind, _ in only_labels} & {"ServiceMonitor", "PrometheusRule"}


def test_service_monitor_selects_the_platforms_services_on_their_http_port() -> None:
    ctx = context(_metrics(serviceMonitor=True), namespace="shop-ns")
    rendered = objects(ctx)
    monitor = rendered[("ServiceMonitor", "shop-services")]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "shop-ns"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["shop-ns"]}
    assert spec["targetLabels"] == ["keelson.dev/platform"]
    assert spec["endpoints"] == [{"port": "http", "path": "/metrics", "scheme": "http", "interval": "30s"}]
    selector = spec["selector"]["matchLabels"]
    services = [o for (kind, _), o in rendered.items() if kind == "Service"]
    assert len(services) == 5
    for svc in services:
        # The selector matches every Service of the platform, and the endpoint names its port.
        assert selector.items() <= svc["metadata"]["labels"].items()
        assert [p["name"] for p in svc["spec"]["ports"]] == ["http"]
    # Not another platform's Services in the same namespace.
    assert selector["keelson.dev/platform"] == "shop"


def test_service_monitor_interval_and_labels() -> None:
    ctx = context(_metrics(serviceMonitor=True, interval="1m30s", labels={"release": "kube-prometheus-stack"}))
    monitor = render_service_monitor(ctx)
    assert monitor is not None
    assert monitor["spec"]["endpoints"][0]["interval"] == "1m30s"
    labels = monitor["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"
    # Keelson's own labels stay: the operator's watch and garbage collection depend on them.
    assert labels["app.kubernetes.io/managed-by"] == "keelson" and labels["keelson.dev/platform"] == "shop"


@pytest.mark.parametrize("interval", ["30", "1h 30m", "-5s", "5S", "", "0.5s"])
def test_bad_intervals_are_refused(interval: str) -> None:
    doc = example()
    doc["spec"]["observability"] = {"metrics": {"serviceMonitor": True, "interval": interval}}
    with pytest.raises(ValidationError, match="interval"):
        MicroservicePlatform.from_object(doc)


@pytest.mark.parametrize("key", ["app.kubernetes.io/managed-by", "keelson.dev/platform"])
def test_keelsons_own_labels_cannot_be_overridden(key: str) -> None:
    doc = example()
    doc["spec"]["observability"] = {"metrics": {"serviceMonitor": True, "labels": {key: "x"}}}
    with pytest.raises(ValidationError, match="Keelson's own labels"):
        MicroservicePlatform.from_object(doc)


def test_network_policies_admit_prometheus_to_the_http_port_only_when_scraped() -> None:
    def from_namespaces(rendered: dict[tuple[str, str], dict[str, Any]], service: str) -> list[tuple[str, Any]]:
        policy = rendered[("NetworkPolicy", service)]
        return [
            (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], rule["ports"])
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
            if "namespaceSelector" in peer
        ]

    assert from_namespaces(objects(context()), "orders") == []
    scraped = objects(context(_metrics(serviceMonitor=True)))
    for service in ("gateway", "users", "orders", "payments", "notifications"):
        assert ("monitoring", [{"protocol": "TCP", "port": 8080}]) in from_namespaces(scraped, service)
    elsewhere = objects(context(_metrics(serviceMonitor=True, prometheusNamespace="observability")))
    assert from_namespaces(elsewhere, "orders") == [("observability", [{"protocol": "TCP", "port": 8080}])]
    # Alerts alone scrape nothing: no new way in.
    assert from_namespaces(objects(context(_metrics(alerts=True))), "orders") == []


# -- PrometheusRule ----------------------------------------------------------------------------------


def _rules(ctx_mutate: Any = None, namespace: str = "shop-ns") -> list[dict[str, Any]]:
    def mutate(spec: dict[str, Any]) -> None:
        if ctx_mutate:
            ctx_mutate(spec)
        spec["observability"] = {"metrics": {"alerts": True, "labels": {"release": "prom"}}}

    rule = render_prometheus_rule(context(mutate, namespace=namespace))
    assert rule is not None
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["metadata"]["namespace"] == namespace
    assert rule["metadata"]["name"] == "shop-alerts" and rule["metadata"]["labels"]["release"] == "prom"
    (group,) = rule["spec"]["groups"]
    assert group["name"] == f"keelson.{namespace}.shop"
    return list(group["rules"])


def test_alerts_cover_the_failure_modes_of_the_design() -> None:
    names = [r["alert"] for r in _rules()]
    assert names == [
        "KeelsonCircuitBreakerOpen",
        "KeelsonHighErrorRate",
        "KeelsonMessagesDeadLettered",
        "KeelsonConsumerLagHigh",
        "KeelsonHandlerFailures",
    ]


def test_every_alert_has_severity_for_and_annotations() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["labels"]["platform"] == "shop"
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert "shop-ns/shop" in rule["annotations"]["description"]


def test_alerts_use_only_metrics_the_services_export() -> None:
    exported = _exported_metric_names()
    assert "keelson_circuit_breaker_state" in exported and "keelson_handler_duration_seconds_count" in exported
    for rule in _rules():
        used = _metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= exported, f"{rule['alert']} uses {sorted(used - exported)}, which no service exports"


def test_alert_labels_are_ones_the_metrics_carry() -> None:
    registry = CollectorRegistry()
    metrics = [
        *vars(HttpServerMetrics.create(registry)).values(),
        *vars(HttpClientMetrics.create(registry)).values(),
        *vars(MessagingMetrics.create(registry)).values(),
    ]
    labels_of: dict[str, set[str]] = {}
    for metric in metrics:
        for family in metric.describe():
            for suffix in _SUFFIXES[family.type]:
                labels_of[family.name + suffix] = set(metric._labelnames)
    # Prometheus adds namespace (and service, from the Service) as target labels.
    target = {"namespace", "service"}
    for rule in _rules():
        for name in _metric_names(rule["expr"]):
            by = re.findall(r"by \(([^)]*)\)", rule["expr"])
            matched = re.findall(rf"{name}\{{([^}}]*)\}}", rule["expr"])
            used = {b.strip() for group in by for b in group.split(",")}
            used |= {m.split("=")[0] for sel in matched for m in re.split(r",(?=[a-z_]+=)", sel)}
            assert used <= labels_of[name] | target, f"{rule['alert']}: {sorted(used - labels_of[name] - target)}"


def test_alerts_are_scoped_to_the_platform() -> None:
    for rule in _rules(namespace="team-a"):
        for selector in re.findall(r"\{([^}]*namespace[^}]*)\}", rule["expr"]):
            assert 'namespace="team-a"' in selector
            assert 'service=~"gateway|notifications|orders|payments|users"' in selector
        assert len(re.findall(r"keelson_[a-z_]+\{", rule["expr"])) == rule["expr"].count('namespace="team-a"')


def test_alerts_that_cannot_fire_are_left_out() -> None:
    def no_events(spec: dict[str, Any]) -> None:
        for svc in spec["services"]:
            svc.pop("subscribes", None)

    def no_calls(spec: dict[str, Any]) -> None:
        for svc in spec["services"]:
            svc.pop("calls", None)

    assert [r["alert"] for r in _rules(no_events)] == ["KeelsonCircuitBreakerOpen", "KeelsonHighErrorRate"]
    assert "KeelsonCircuitBreakerOpen" not in [r["alert"] for r in _rules(no_calls)]


# -- operator: ownership and a missing CRD -------------------------------------------------------


def test_monitoring_kinds_are_children() -> None:
    kinds = {(k.api_version, k.kind, k.plural) for k in CHILD_KINDS}
    assert ("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors") in kinds
    assert ("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules") in kinds


def test_monitoring_condition() -> None:
    assert monitoring_condition(Observations()).reason == "NotRequested"
    desired = ["ServiceMonitor/shop-services", "PrometheusRule/shop-alerts"]
    missing = monitoring_condition(Observations(monitoring_desired=desired, monitoring_unavailable=["ServiceMonitor"]))
    assert (missing.status, missing.reason) == ("False", "MonitoringKindUnavailable")
    assert "ServiceMonitor" in missing.message and "CRD" in missing.message
    pending = monitoring_condition(Observations(monitoring_desired=desired, monitoring_live=desired[:1]))
    assert (pending.status, pending.reason) == ("False", "MonitoringPending") and "shop-alerts" in pending.message
    failed = monitoring_condition(Observations(monitoring_desired=desired, monitoring_errors={desired[0]: "invalid"}))
    assert (failed.status, failed.reason) == ("False", "ApplyFailed")
    applied = monitoring_condition(Observations(monitoring_desired=desired, monitoring_live=desired))
    assert (applied.status, applied.reason) == ("True", "MonitoringApplied")


class _Api:
    """Applies into the cache like a watch would; the monitoring kinds are not served (no CRDs)."""

    def __init__(self, cache: DictCache, served: bool) -> None:
        self.cache = cache
        self.served = served
        self.status: dict[str, Any] = {}
        self.applied: list[str] = []

    async def apply(self, obj: dict[str, Any], *, field_manager: str = "keelson-operator") -> dict[str, Any]:
        store = self.cache.stores.setdefault(obj["kind"], {})
        if field_manager != "keelson-operator":  # a replicas hand-over: a partial object
            live = store[(obj["metadata"]["namespace"], obj["metadata"]["name"])]  # type: ignore[index]
            live["spec"] = {**live["spec"], **obj["spec"]}
            return dict(live)
        if obj["kind"] in ("ServiceMonitor", "PrometheusRule") and not self.served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self.applied.append(obj["kind"])
        live = {**obj, "metadata": {**obj["metadata"], "uid": f"uid-{obj['metadata']['name']}"}}
        if obj["kind"] == "Deployment":
            live["spec"] = {**obj["spec"], "replicas": 3}
            live["status"] = {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
        store[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = live  # type: ignore[index]
        return live

    async def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> None:
        self.cache.stores[kind.kind].pop((namespace, name), None)  # type: ignore[attr-defined]

    async def replace_status(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any], *, resource_version: str
    ) -> str:
        self.status = status
        return str(int(resource_version) + 1)

    async def patch_merge(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def create(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        return obj


def _platform() -> dict[str, Any]:
    doc = example()
    doc["metadata"].update(namespace="ns", uid="p-uid", generation=1, resourceVersion="1")
    doc["spec"]["observability"] = {"metrics": {"serviceMonitor": True, "alerts": True}}
    return doc


def _conditions(api: _Api) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in api.status["conditions"]}


async def test_missing_crds_are_reported_without_failing_ready_or_retrying() -> None:
    cache = DictCache()
    api = _Api(cache, served=False)
    rec = Reconciler(api, cache, reference_image="img:1", now=lambda: "2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    outcome = await rec.reconcile(_platform())
    conditions = _conditions(api)
    monitoring = conditions[MONITORING_READY]
    assert (monitoring["status"], monitoring["reason"]) == ("False", "MonitoringKindUnavailable")
    assert "ServiceMonitor, PrometheusRule" in monitoring["message"]
    assert conditions["Ready"]["status"] == "True" and conditions["WorkloadsReady"]["status"] == "True"
    assert outcome.ready and not outcome.retry and not outcome.errors


async def test_installed_crds_are_applied_and_reported() -> None:
    cache = DictCache()
    api = _Api(cache, served=True)
    rec = Reconciler(api, cache, reference_image="img:1", now=lambda: "2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    platform = _platform()
    await rec.reconcile(platform)
    assert {"ServiceMonitor", "PrometheusRule"} <= set(api.applied)
    monitoring = _conditions(api)[MONITORING_READY]
    assert (monitoring["status"], monitoring["reason"]) == ("True", "MonitoringApplied")
    sm = cache.get("ServiceMonitor", "ns", "shop-services")
    assert sm is not None and sm["metadata"]["ownerReferences"][0]["uid"] == "p-uid"
    # Turned off: both pruned, and the condition says so.
    platform["status"] = api.status
    platform["spec"]["observability"] = {}
    await rec.reconcile(platform)
    assert cache.get("ServiceMonitor", "ns", "shop-services") is None
    assert cache.get("PrometheusRule", "ns", "shop-alerts") is None
    assert _conditions(api)[MONITORING_READY]["reason"] == "NotRequested"
