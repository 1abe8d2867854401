"""The dashboards and alerts read metrics that exist: the reference services (all five, serving a
customer) and the operator are scraped, and every metric named in every dashboard panel and every
alert rule (the platform's PrometheusRule and the chart's) must be among what they export."""

from __future__ import annotations

import urllib.request
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e.kube import Kube, eventually
from e2e.svc_platform import kafka_bootstrap
from e2e.svc_shop import RunningShop, shop
from e2e.test_chart import _rendered as chart_objects
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.devstack.stack import LocalStack
from keelson.render import RenderContext
from keelson.render.dashboards import DASHBOARDS, dashboard
from keelson.render.prometheusrule import alert_rules
from tests.cases.invalid_platforms import example, workloads_example
from tests.cases.promql import metric_names

__all__ = ["kafka_bootstrap", "shop"]
pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.kafka]

# Series Prometheus makes itself for every target, never on a /metrics page.
PROMETHEUS_OWN = {"up"}
# The sample names of a family of each type, as the exposition format writes them.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "untyped": ("",),
}


def exported(text: str) -> set[str]:
    """Every series name a Prometheus scraping this page could query, samples or not yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def queries() -> dict[str, str]:
    """Where -> PromQL, for every panel of every dashboard and every alert rule."""
    found = {
        f"dashboard {key} / {panel['title']} / {target['refId']}": target["expr"]
        for key in DASHBOARDS
        for panel in dashboard(key)["panels"]
        for target in panel["targets"]
    }
    doc = example()
    doc["spec"]["observability"] = {"metrics": {"serviceMonitor": True, "alerts": True}}
    ctx = RenderContext(name="shop", namespace="shop", spec=MicroservicePlatform.from_object(doc).spec)
    found |= {f"platform alert {rule['alert']}": rule["expr"] for rule in alert_rules(ctx)}
    chart = chart_objects("monitoring.prometheusRule.enabled=true", "monitoring.podMonitor.enabled=true")
    for rule_object in (o for o in chart if o["kind"] == "PrometheusRule"):
        for group in rule_object["spec"]["groups"]:
            found |= {f"chart alert {rule['alert']}": str(rule["expr"]) for rule in group["rules"]}
    return found


async def _scrape_services(running: RunningShop) -> str:
    pages = []
    for name, app in running.apps.items():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as client:
            response = await client.get("/metrics")
            assert response.status_code == 200, (name, response.text)
            pages.append(response.text)
    return "\n".join(pages)


def _scrape_operator(stack: LocalStack) -> str:
    url = f"http://127.0.0.1:{stack.ports['operator-metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_every_metric_of_every_panel_and_alert_is_exported(shop: RunningShop, stack: LocalStack) -> None:
    # A customer's journey first, so that what is created on first use (a downstream's client,
    # the consumers' histograms) has been.
    await shop.register("metrics@example.com")
    headers = await shop.bearer("metrics@example.com")
    response = await shop.client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "SKU-1", "quantity": 1}]},
        headers={**headers, "Idempotency-Key": "metrics-1"},
    )
    assert response.status_code == 201, response.text
    names = exported(await _scrape_services(shop)) | exported(_scrape_operator(stack)) | PROMETHEUS_OWN
    checked = queries()
    assert len(checked) > 30  # every dashboard panel and alert, not an empty walk
    missing = {where: sorted(metric_names(expr) - names) for where, expr in checked.items()}
    assert {where: m for where, m in missing.items() if m} == {}


def _dashboards_config_map(kube: Kube, namespace: str) -> dict[str, Any] | None:
    return kube.get("configmap", "shop-dashboards", namespace)


def test_a_platform_that_asks_gets_its_dashboards(kube: Kube, namespace: str) -> None:
    doc = workloads_example()
    doc["spec"]["observability"] = {"metrics": {"dashboards": True}}
    kube.apply(namespace, doc)
    cm = eventually(lambda: _dashboards_config_map(kube, namespace), timeout=60, what="the dashboards ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(cm["data"]) == ["shop-kafka.json", "shop-overview.json", "shop-services.json"]
    assert yaml.safe_load(cm["data"]["shop-overview.json"])["templating"]["list"][1]["query"] == namespace

    del doc["spec"]["observability"]
    kube.apply(namespace, doc)
    eventually(lambda: _dashboards_config_map(kube, namespace) is None, timeout=60, what="the ConfigMap pruned")
