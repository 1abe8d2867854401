"""Prometheus metrics of the services' HTTP side, on prometheus-client's default registry (one per
process; `service` tells services apart when tests run several in one process)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# From a cached JWKS lookup to a request waiting out a downstream's 5 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class HttpServerMetrics:
    requests: Counter
    duration: Histogram
    in_flight: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = REGISTRY) -> HttpServerMetrics:
        return cls(
            requests=Counter(
                "keelson_http_requests_total",
                "Requests served; route is the matched route template (unmatched: `other`).",
                ["service", "method", "route", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "keelson_http_request_duration_seconds",
                "Time to serve a request, until its response started.",
                ["service", "method", "route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "keelson_http_requests_in_flight", "Requests being served.", ["service"], registry=registry
            ),
        )


@dataclass(frozen=True)
class HttpClientMetrics:
    requests: Counter
    retries: Counter
    failures: Counter
    duration: Histogram
    breaker_state: Gauge
    breaker_transitions: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = REGISTRY) -> HttpClientMetrics:
        return cls(
            requests=Counter(
                "keelson_http_client_requests_total",
                "Calls to a downstream (attempts, retries included); outcome: a status class, or "
                "timeout, unreachable, circuit_open.",
                ["service", "downstream", "method", "outcome"],
                registry=registry,
            ),
            retries=Counter(
                "keelson_http_client_retries_total",
                "Attempts repeated after a failure (idempotent requests only).",
                ["service", "downstream"],
                registry=registry,
            ),
            failures=Counter(
                "keelson_http_client_failures_total",
                "Attempts the circuit breaker counted as failures; reason: timeout, unreachable, status_5xx.",
                ["service", "downstream", "reason"],
                registry=registry,
            ),
            duration=Histogram(
                "keelson_http_client_request_duration_seconds",
                "Time of one attempt against a downstream.",
                ["service", "downstream"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            breaker_state=Gauge(
                "keelson_circuit_breaker_state",
                "Circuit breaker per downstream: 0 closed, 1 open, 2 half-open.",
                ["service", "downstream"],
                registry=registry,
            ),
            breaker_transitions=Counter(
                "keelson_circuit_breaker_transitions_total",
                "Circuit breaker state changes, by the state entered.",
                ["service", "downstream", "state"],
                registry=registry,
            ),
        )


@cache
def server_metrics() -> HttpServerMetrics:
    """The process-wide server metrics, created once."""
    return HttpServerMetrics.create()


@cache
def client_metrics() -> HttpClientMetrics:
    """The process-wide client metrics, created once."""
    return HttpClientMetrics.create()


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The body and content type of a `/metrics` response."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
