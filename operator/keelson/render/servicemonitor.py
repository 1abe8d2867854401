"""A Prometheus Operator `ServiceMonitor` per platform, for
`spec.observability.metrics.serviceMonitor: true` (monitoring.coreos.com/v1, an optional kind).

It selects the platform's own Services (Keelson's labels, in the platform's namespace only) and
scrapes `/metrics` on their `http` port, which every rendered Service names (`render.service`).
Each series gets the Service's `keelson.dev/platform` label (as `keelson_dev_platform`), so
dashboards can tell platforms apart; Prometheus' `service` target label is the Service's name,
which is the Keelson service's name (the metrics' own `service` label then shows as
`exported_service`, with the same value).
"""

from __future__ import annotations

from typing import Any

from keelson.api.v1alpha1 import Metrics
from keelson.render.context import RenderContext
from keelson.render.labels import MANAGED_BY, PLATFORM_LABEL, platform_labels

API_VERSION = "monitoring.coreos.com/v1"
DEFAULT_INTERVAL = "30s"
DEFAULT_PROMETHEUS_NAMESPACE = "monitoring"
METRICS_PATH = "/metrics"
PORT_NAME = "http"  # the name of every rendered Service's port


def metrics_settings(ctx: RenderContext) -> Metrics | None:
    observability = ctx.spec.observability
    return observability.metrics if observability else None


def scraped(ctx: RenderContext) -> bool:
    metrics = metrics_settings(ctx)
    return bool(metrics and metrics.serviceMonitor)


def prometheus_namespace(ctx: RenderContext) -> str:
    metrics = metrics_settings(ctx)
    return (metrics.prometheusNamespace if metrics else None) or DEFAULT_PROMETHEUS_NAMESPACE


def monitoring_metadata(ctx: RenderContext, name: str) -> dict[str, Any]:
    """Metadata of the monitoring objects: the user's labels (for a Prometheus' selectors) under
    Keelson's own (admission refuses a user label that would override one)."""
    metrics = metrics_settings(ctx)
    labels = {**((metrics.labels if metrics else None) or {}), **platform_labels(ctx)}
    return {"name": name, "namespace": ctx.namespace, "labels": labels}


def service_monitor_name(ctx: RenderContext) -> str:
    return f"{ctx.name}-services"


def render_service_monitor(ctx: RenderContext) -> dict[str, Any] | None:
    metrics = metrics_settings(ctx)
    if metrics is None or not metrics.serviceMonitor:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": monitoring_metadata(ctx, service_monitor_name(ctx)),
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/managed-by": MANAGED_BY, PLATFORM_LABEL: ctx.name},
            },
            "namespaceSelector": {"matchNames": [ctx.namespace]},
            "targetLabels": [PLATFORM_LABEL],
            "endpoints": [
                {
                    "port": PORT_NAME,
                    "path": METRICS_PATH,
                    "scheme": "http",
                    "interval": metrics.interval or DEFAULT_INTERVAL,
                }
            ],
        },
    }
