"""Grafana dashboards for Keelson, as Grafana's JSON model. Pure.

Four dashboards: a platform overview, per-service RED (rate, errors, duration, and the calls to
downstreams), Kafka consumers (lag, retries, dead letters, DLQ depth) and the operator. The chart
ships them cluster-wide (`charts/keelson/dashboards/`, written by `keelson dashboards`); a platform
with `spec.observability.metrics.dashboards: true` gets the first three in a ConfigMap of its own,
pinned to its namespace and services. Grafana's dashboard sidecar loads every ConfigMap labelled
`grafana_dashboard: "1"`.

Every query uses only metrics the reference services and the operator export; a cluster test
scrapes them and checks every name in every panel (e2e/test_dashboards.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from keelson.render.context import RenderContext
from keelson.render.labels import metadata
from keelson.render.servicemonitor import metrics_settings

SIDECAR_LABEL = "grafana_dashboard"
RATE = "$__rate_interval"
SERVICES = 'namespace=~"$namespace", service=~"$service"'
NAMESPACE = 'namespace=~"$namespace"'
PLATFORM_DASHBOARDS = ("overview", "services", "kafka")  # the operator's is one per cluster


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or stat
    description: str = ""


def _ratio(numerator: str, denominator: str) -> str:
    return f"({numerator}) / ({denominator})"


def _rate(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{RATE}]))"


def _quantile(q: float, metric: str, selector: str, by: str = "") -> str:
    labels = ", ".join(["le", *([by] if by else [])])
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"


ERRORS = SERVICES + ', status=~"5.."'

OVERVIEW = (
    Panel("Requests per second", ((_rate("keelson_http_requests_total", SERVICES), "all"),), "reqps", "stat"),
    Panel(
        "5xx ratio",
        (
            (
                _ratio(_rate("keelson_http_requests_total", ERRORS), _rate("keelson_http_requests_total", SERVICES)),
                "5xx",
            ),
        ),
        "percentunit",
        "stat",
    ),
    Panel("p95 latency", ((_quantile(0.95, "keelson_http_request_duration_seconds", SERVICES), "p95"),), "s", "stat"),
    Panel(
        "Open circuit breakers",
        (
            (
                "count(max by (service, downstream) (keelson_circuit_breaker_state{"
                + SERVICES
                + "}) > 0) or vector(0)",
                "open",
            ),
        ),
        "short",
        "stat",
    ),
    Panel(
        "Requests per second by service",
        ((_rate("keelson_http_requests_total", SERVICES, "service"), "{{service}}"),),
        "reqps",
    ),
    Panel(
        "5xx ratio by service",
        (
            (
                _ratio(
                    _rate("keelson_http_requests_total", ERRORS, "service"),
                    _rate("keelson_http_requests_total", SERVICES, "service"),
                ),
                "{{service}}",
            ),
        ),
        "percentunit",
    ),
    Panel(
        "Consumer lag by service (max over partitions)",
        (("max by (service) (keelson_consumer_lag{" + SERVICES + "})", "{{service}}"),),
    ),
    Panel(
        "Messages dead-lettered (last hour)",
        (
            (
                "sum by (service, topic) (increase(keelson_messages_dead_lettered_total{" + SERVICES + "}[1h]))",
                "{{service}} {{topic}}",
            ),
        ),
    ),
)

SERVICE_RED = (
    Panel("Rate by route", ((_rate("keelson_http_requests_total", SERVICES, "route"), "{{route}}"),), "reqps"),
    Panel(
        "Errors: 5xx ratio by route",
        (
            (
                _ratio(
                    _rate("keelson_http_requests_total", ERRORS, "route"),
                    _rate("keelson_http_requests_total", SERVICES, "route"),
                ),
                "{{route}}",
            ),
        ),
        "percentunit",
    ),
    Panel(
        "Duration",
        tuple(
            (_quantile(q, "keelson_http_request_duration_seconds", SERVICES), f"p{round(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ),
        "s",
    ),
    Panel(
        "Requests in flight", (("sum by (service) (keelson_http_requests_in_flight{" + SERVICES + "})", "{{service}}"),)
    ),
    Panel(
        "Calls to downstreams by outcome",
        ((_rate("keelson_http_client_requests_total", SERVICES, "downstream, outcome"), "{{downstream}} {{outcome}}"),),
        "reqps",
    ),
    Panel(
        "Downstream latency p95",
        ((_quantile(0.95, "keelson_http_client_request_duration_seconds", SERVICES, "downstream"), "{{downstream}}"),),
        "s",
    ),
    Panel(
        "Retries to downstreams",
        ((_rate("keelson_http_client_retries_total", SERVICES, "downstream"), "{{downstream}}"),),
        "reqps",
    ),
    Panel(
        "Circuit breaker state (0 closed, 1 open, 2 half-open)",
        (
            (
                "max by (service, downstream) (keelson_circuit_breaker_state{" + SERVICES + "})",
                "{{service}} -> {{downstream}}",
            ),
        ),
    ),
)

KAFKA = (
    Panel(
        "Messages consumed",
        ((_rate("keelson_messages_consumed_total", SERVICES, "service, topic"), "{{service}} {{topic}}"),),
        "reqps",
    ),
    Panel(
        "Consumer lag by partition",
        (
            (
                "max by (service, topic, partition) (keelson_consumer_lag{" + SERVICES + "})",
                "{{service}} {{topic}}[{{partition}}]",
            ),
        ),
    ),
    Panel(
        "Retries (messages sent to a retry topic)",
        ((_rate("keelson_messages_retried_total", SERVICES, "service, topic"), "{{service}} {{topic}}"),),
        "reqps",
    ),
    Panel(
        "Dead-lettered",
        (
            (
                "sum by (service, topic, reason) (increase(keelson_messages_dead_lettered_total{"
                + SERVICES
                + "}[$__range]))",
                "{{service}} {{topic}} {{reason}}",
            ),
        ),
    ),
    Panel("DLQ depth", (("max by (service, topic) (keelson_dlq_depth{" + SERVICES + "})", "{{service}} {{topic}}"),)),
    Panel(
        "Handler failure ratio",
        (
            (
                _ratio(
                    _rate("keelson_handler_duration_seconds_count", SERVICES + ', outcome="failed"', "service, topic"),
                    _rate("keelson_handler_duration_seconds_count", SERVICES, "service, topic"),
                ),
                "{{service}} {{topic}}",
            ),
        ),
        "percentunit",
    ),
    Panel(
        "Handler duration p95",
        ((_quantile(0.95, "keelson_handler_duration_seconds", SERVICES, "service, topic"), "{{service}} {{topic}}"),),
        "s",
    ),
    Panel(
        "Events published and outbox backlog",
        (
            (_rate("keelson_messages_produced_total", NAMESPACE, "topic"), "published {{topic}}"),
            ("max by (service) (keelson_outbox_pending{" + SERVICES + "})", "pending in {{service}}'s outbox"),
        ),
    ),
)

OPERATOR = (
    Panel(
        "Reconciles per second",
        (("sum(rate(keelson_reconcile_duration_seconds_count[" + RATE + "]))", "passes"),),
        "ops",
    ),
    Panel(
        "Reconcile errors per second", (("sum(rate(keelson_reconcile_errors_total[" + RATE + "]))", "errors"),), "ops"
    ),
    Panel("Work queue depth", (("max(keelson_queue_depth)", "platforms waiting"),)),
    Panel("Platforms by readiness", (("sum by (ready) (keelson_platforms)", "ready={{ready}}"),)),
    Panel(
        "Reconcile duration",
        tuple(
            (
                f"histogram_quantile({q}, sum by (le) (rate(keelson_reconcile_duration_seconds_bucket[{RATE}])))",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.95)
        ),
        "s",
    ),
    Panel(
        "Writes to the API server",
        (
            ("sum by (kind) (rate(keelson_objects_applied_total[" + RATE + "]))", "applied {{kind}}"),
            ("sum by (kind) (rate(keelson_objects_deleted_total[" + RATE + "]))", "deleted {{kind}}"),
        ),
        "ops",
    ),
    Panel(
        "Work outside Kubernetes",
        (
            ("sum(rate(keelson_kafka_admin_writes_total[" + RATE + "]))", "Kafka admin writes"),
            ("sum(rate(keelson_kafka_admin_requests_total[" + RATE + "]))", "Kafka admin requests"),
            ("sum(rate(keelson_postgres_connections_total[" + RATE + "]))", "PostgreSQL connections"),
            ("sum by (area) (rate(keelson_area_passes_total[" + RATE + "]))", "{{area}} passes"),
        ),
        "ops",
    ),
    Panel(
        "Write loops stopped",
        (("sum by (kind) (increase(keelson_write_loops_total[$__range]))", "{{kind}}"),),
        description="Objects the write-loop guard stopped writing: something undoes every write.",
    ),
)

DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...]]] = {
    "overview": ("Keelson / Platform overview", OVERVIEW),
    "services": ("Keelson / Services (RED)", SERVICE_RED),
    "kafka": ("Keelson / Kafka consumers", KAFKA),
    "operator": ("Keelson / Operator", OPERATOR),
}


def _panel(index: int, panel: Panel, y: int) -> dict[str, Any]:
    width, height = (6, 4) if panel.kind == "stat" else (12, 8)
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": 0, "y": y, "w": width, "h": height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, Any]]:
    """Stats four to a row, graphs two to a row, in order."""
    out: list[dict[str, Any]] = []
    x = y = row_height = 0
    for index, panel in enumerate(panels):
        built = _panel(index, panel, y)
        width, height = built["gridPos"]["w"], built["gridPos"]["h"]
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        built["gridPos"].update(x=x, y=y)
        x, row_height = x + width, max(row_height, height)
        out.append(built)
    return out


def _query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
    }


def _custom_variable(name: str, label: str, values: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "includeAll": True,
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "options": [],
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dashboard(
    key: str, *, namespace: str | None = None, services: list[str] | None = None, platform: str = ""
) -> dict[str, Any]:
    """One dashboard; with a namespace and services, pinned to that platform."""
    title, panels = DASHBOARDS[key]
    variables: list[dict[str, Any]] = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"}
    ]
    if key != "operator":
        if namespace is not None and services is not None:
            variables += [
                _custom_variable("namespace", "Namespace", [namespace]),
                _custom_variable("service", "Service", services),
            ]
        else:
            variables += [
                _query_variable("namespace", "Namespace", "label_values(keelson_http_requests_total, namespace)"),
                _query_variable(
                    "service", "Service", 'label_values(keelson_http_requests_total{namespace=~"$namespace"}, service)'
                ),
            ]
    suffix = f" ({namespace}/{platform})" if platform else ""
    return {
        "uid": f"keelson-{key}" + (f"-{namespace}-{platform}"[: 40 - len(key)] if platform else ""),
        "title": title + suffix,
        "tags": ["keelson"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "panels": _layout(panels),
    }


def dashboard_files() -> dict[str, str]:
    """The chart's dashboards, file name -> JSON (what `keelson dashboards` writes)."""
    return {f"keelson-{key}.json": json.dumps(dashboard(key), indent=2) + "\n" for key in DASHBOARDS}


def dashboards_requested(ctx: RenderContext) -> bool:
    metrics = metrics_settings(ctx)
    return bool(metrics and metrics.dashboards)


def render_dashboards(ctx: RenderContext) -> dict[str, Any] | None:
    """The platform's dashboards in one ConfigMap, for Grafana's sidecar to load."""
    if not dashboards_requested(ctx):
        return None
    services = [s.name for s in ctx.services]
    meta = metadata(ctx, f"{ctx.name}-dashboards")
    meta["labels"][SIDECAR_LABEL] = "1"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {
            f"{ctx.name}-{key}.json": json.dumps(
                dashboard(key, namespace=ctx.namespace, services=services, platform=ctx.name), sort_keys=True
            )
            for key in PLATFORM_DASHBOARDS
        },
    }
