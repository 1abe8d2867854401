"""A Prometheus Operator `PrometheusRule` per platform, for
`spec.observability.metrics.alerts: true` (monitoring.coreos.com/v1, an optional kind).

A small set of alerts on what this design makes fail: a circuit breaker that stays open, messages
dead-lettered, a service answering 5xx, consumers falling behind or failing their handlers. They
use the metrics the reference services export (`keelson_services.observability.metrics`,
`keelson_services.messaging.metrics`; a unit test checks every name against them), scoped to the
platform by namespace and service names: `service` is the Kubernetes Service's name under the
ServiceMonitor and the metrics' own label under any other scrape (e.g. a PodMonitor), and both are
the Keelson service's name. Every alert carries `severity`, `platform` and a `for:`.

The operator's own alerts (reconcile errors) are not here but in the Helm chart
(`monitoring.prometheusRule`): the operator is one per cluster and its metrics carry no platform,
so a copy per platform would fire the same alert once per platform.
"""

from __future__ import annotations

from typing import Any

from keelson.render.context import RenderContext
from keelson.render.servicemonitor import API_VERSION, metrics_settings, monitoring_metadata

# Thresholds; the alerts' descriptions quote them.
ERROR_RATIO = 0.05  # 5xx share of a service's responses
HANDLER_FAILURE_RATIO = 0.1  # failed share of a consumer's handler runs
CONSUMER_LAG = 1000  # messages behind on one partition


def prometheus_rule_name(ctx: RenderContext) -> str:
    return f"{ctx.name}-alerts"


def _selector(ctx: RenderContext, *extra: str) -> str:
    services = "|".join(sorted(s.name for s in ctx.services))
    return "{" + ",".join([f'namespace="{ctx.namespace}"', f'service=~"{services}"', *extra]) + "}"


def _alert(
    ctx: RenderContext, name: str, expr: str, *, for_: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "platform": ctx.name},
        "annotations": {"summary": summary, "description": description},
    }


def _text(*parts: str) -> str:
    return " ".join(parts)


def alert_rules(ctx: RenderContext) -> list[dict[str, Any]]:
    """The alerts that can fire for this platform: breaker alerts only when a service calls another,
    consumer alerts only when one subscribes to events."""
    calls = any(s.calls for s in ctx.services)
    consumes = any(s.subscribes for s in ctx.services)
    sel = _selector(ctx)
    errors = _selector(ctx, 'status=~"5.."')
    failed = _selector(ctx, 'outcome="failed"')
    where = f"In platform {ctx.namespace}/{ctx.name},"
    svc = "{{ $labels.service }}"
    breaker = [
        _alert(
            ctx,
            "KeelsonCircuitBreakerOpen",
            f"max by (namespace, service, downstream) (keelson_circuit_breaker_state{sel}) > 0",
            for_="5m",
            severity="warning",
            summary=f"{svc} has stopped calling {{{{ $labels.downstream }}}}: its circuit breaker is open",
            description=_text(
                where,
                f"the circuit breaker of {svc} towards {{{{ $labels.downstream }}}} has not closed for 5 minutes",
                "(open or probing): the downstream keeps failing or timing out, and the calls that need it",
                "fail fast. Look at the downstream's health and its 5xx ratio.",
            ),
        ),
    ]
    http = [
        _alert(
            ctx,
            "KeelsonHighErrorRate",
            _text(
                f"sum by (namespace, service) (rate(keelson_http_requests_total{errors}[5m]))",
                f"/ sum by (namespace, service) (rate(keelson_http_requests_total{sel}[5m])) > {ERROR_RATIO:g}",
            ),
            for_="10m",
            severity="critical",
            summary=f"{svc} answers {{{{ $value | humanizePercentage }}}} of its requests with 5xx",
            description=_text(
                where,
                f"more than {ERROR_RATIO:.0%} of the responses of {svc} have been server errors for 10 minutes.",
                "A 503 often means an open circuit breaker towards a downstream (see KeelsonCircuitBreakerOpen);",
                "the service's logs tell which, by trace_id.",
            ),
        ),
    ]
    consumer = [
        _alert(
            ctx,
            "KeelsonMessagesDeadLettered",
            _text(
                "sum by (namespace, service, topic, reason)",
                f"(increase(keelson_messages_dead_lettered_total{sel}[10m])) > 0",
            ),
            for_="1m",
            severity="warning",
            summary=f"{svc} dead-lettered messages of {{{{ $labels.topic }}}} ({{{{ $labels.reason }}}})",
            description=_text(
                where,
                f"{svc} sent {{{{ $value | humanize }}}} message(s) of {{{{ $labels.topic }}}} to its DLQ in the",
                "last 10 minutes (reason {{ $labels.reason }}): they will not be processed without action.",
                "Inspect and replay them with `keelson dlq list|show|replay`.",
            ),
        ),
        _alert(
            ctx,
            "KeelsonConsumerLagHigh",
            # max, not sum, over pods: a pod's gauge of a partition it no longer holds is not reset.
            f"max by (namespace, service, topic, partition) (keelson_consumer_lag{sel}) > {CONSUMER_LAG}",
            for_="15m",
            severity="warning",
            summary=_text(
                f"{svc} is {{{{ $value }}}} messages behind on", "{{ $labels.topic }}[{{ $labels.partition }}]"
            ),
            description=_text(
                where,
                f"{svc} has been more than {CONSUMER_LAG} messages behind the end of partition",
                "{{ $labels.partition }} of {{ $labels.topic }} for 15 minutes: it consumes slower than events",
                "arrive, or is stuck. Check its handler failures and replicas; the topic's partitions bound how",
                "far it can scale out.",
            ),
        ),
        _alert(
            ctx,
            "KeelsonHandlerFailures",
            _text(
                f"sum by (namespace, service, topic) (rate(keelson_handler_duration_seconds_count{failed}[5m]))",
                f"/ sum by (namespace, service, topic) (rate(keelson_handler_duration_seconds_count{sel}[5m]))",
                f"> {HANDLER_FAILURE_RATIO:g}",
            ),
            for_="10m",
            severity="warning",
            summary=f"{svc} fails {{{{ $value | humanizePercentage }}}} of the messages of {{{{ $labels.topic }}}}",
            description=_text(
                where,
                f"more than {HANDLER_FAILURE_RATIO:.0%} of the handler runs of {svc} on {{{{ $labels.topic }}}}",
                "have failed for 10 minutes: the messages go through the retry topics and, once retries are",
                "used up, to the DLQ.",
            ),
        ),
    ]
    return [*(breaker if calls else []), *http, *(consumer if consumes else [])]


def render_prometheus_rule(ctx: RenderContext) -> dict[str, Any] | None:
    metrics = metrics_settings(ctx)
    if metrics is None or not metrics.alerts:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": monitoring_metadata(ctx, prometheus_rule_name(ctx)),
        "spec": {"groups": [{"name": f"keelson.{ctx.namespace}.{ctx.name}", "rules": alert_rules(ctx)}]},
    }
