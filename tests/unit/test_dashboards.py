"""Grafana dashboards: generated into the chart, rendered per platform on request, and their
PromQL read by a tokenizer that the cluster test (e2e/test_dashboards.py) relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.render import RenderContext, render_platform
from keelson.render.dashboards import DASHBOARDS, PLATFORM_DASHBOARDS, dashboard, dashboard_files, render_dashboards
from tests.cases.invalid_platforms import example
from tests.cases.promql import metric_names, tokenize

CHART_DASHBOARDS = Path(__file__).resolve().parents[2] / "charts" / "keelson" / "dashboards"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (service) (rate(a_total{service=~"x|y", route="/{id}"}[5m]))', {"a_total"}),
        ("sum(rate(a_total[$__rate_interval])) by (le) / ignoring(pod) group_left(node) b", {"a_total", "b"}),
        ('histogram_quantile(0.95, sum by (le) (rate(c_bucket{ns=~"$namespace"}[${__range}])))', {"c_bucket"}),
        ("count(max without (pod) (d) > bool 0) or vector(0) unless on(x) e offset 5m", {"d", "e"}),
        ("max_over_time(f[10m:1m]) * -1 + Inf", {"f"}),
        ('absent(up{job="a/b"} == 1)', {"up"}),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_tokenizer_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unexpected"):
        tokenize("a ? b")
    with pytest.raises(ValueError, match="unbalanced"):
        metric_names("sum(a")


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board["panels"])


def test_chart_dashboards_are_the_generated_ones() -> None:
    """Generated, never hand-edited: `keelson dashboards -o charts/keelson/dashboards`."""
    files = {p.name: p.read_text() for p in CHART_DASHBOARDS.glob("*.json")}
    assert files == dashboard_files()


@pytest.mark.parametrize("key", DASHBOARDS)
def test_every_panel_reads_keelson_metrics(key: str) -> None:
    board = dashboard(key)
    assert len(board["uid"]) <= 40
    for panel in _panels(board):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and all(n.startswith("keelson_") for n in names), (panel["title"], names)
    # No two panels overlap.
    cells = [
        (x, y)
        for g in (p["gridPos"] for p in _panels(board))
        for x in range(g["x"], g["x"] + g["w"])
        for y in range(g["y"], g["y"] + g["h"])
    ]
    assert len(cells) == len(set(cells))


def _context(metrics: dict[str, Any] | None) -> RenderContext:
    doc = example()
    if metrics is not None:
        doc["spec"]["observability"] = {"metrics": metrics}
    spec = MicroservicePlatform.from_object(doc).spec
    return RenderContext(name="shop", namespace="shop-ns", spec=spec)


def test_a_platform_gets_its_dashboards_only_when_it_asks() -> None:
    assert render_dashboards(_context(None)) is None
    assert render_dashboards(_context({"alerts": True})) is None
    cm = render_dashboards(_context({"dashboards": True}))
    assert cm is not None and cm in render_platform(_context({"dashboards": True}))
    assert cm["metadata"]["name"] == "shop-dashboards" and cm["metadata"]["namespace"] == "shop-ns"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "keelson"
    assert set(cm["data"]) == {f"shop-{key}.json" for key in PLATFORM_DASHBOARDS}
    board = json.loads(cm["data"]["shop-services.json"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["namespace"]["query"] == "shop-ns"
    assert variables["service"]["query"] == "gateway,users,orders,payments,notifications"
    assert board["title"] == "Keelson / Services (RED) (shop-ns/shop)" and len(board["uid"]) <= 40
    other = render_dashboards(RenderContext(name="shop", namespace="other", spec=_context({"dashboards": True}).spec))
    assert other is not None
    assert json.loads(other["data"]["shop-services.json"])["uid"] != board["uid"]
