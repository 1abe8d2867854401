"""Prometheus metrics of the messaging library. For a consumer's metrics `topic` is the
subscription's main topic (so the retries of one event add up under one name), except for the
lag, which is per partition read; `service` is the consuming service. For `produced` it is the
topic written to."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Handlers range from in-memory updates to database round trips.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencySeries:
    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self._bounds, seconds)] += 1
        self.total += seconds


class LatencyHistogram(Collector):
    """A labelled Prometheus histogram whose `observe` is a bisection and two additions.
    prometheus-client's own `Histogram.observe` takes a lock per value it touches, which costs a
    consumer about a tenth of its throughput when a handler takes a few microseconds. Observed
    from one event loop; a scrape from another thread reads a consistent copy of the buckets."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self._bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], LatencySeries] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> LatencySeries:
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        return self._series.setdefault(values, LatencySeries(self._bounds))

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, series in list(self._series.items()):
            cumulative = list(accumulate(list(series.counts)))
            buckets = [(repr(float(b)), float(c)) for b, c in zip(self._bounds, cumulative, strict=False)]
            family.add_metric(list(labels), [*buckets, ("+Inf", float(cumulative[-1]))], series.total)
        yield family


@dataclass(frozen=True)
class MessagingMetrics:
    produced: Counter
    consumed: Counter
    retried: Counter
    dead_lettered: Counter
    handler_seconds: LatencyHistogram
    lag: Gauge
    dlq_depth: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = REGISTRY) -> MessagingMetrics:
        return cls(
            produced=Counter(
                "keelson_messages_produced_total",
                "Events published (acknowledged by the brokers).",
                ["topic"],
                registry=registry,
            ),
            consumed=Counter(
                "keelson_messages_consumed_total",
                "Messages read from a subscription's main or retry topics.",
                ["topic", "service"],
                registry=registry,
            ),
            retried=Counter(
                "keelson_messages_retried_total",
                "Failed messages sent to a retry topic.",
                ["topic", "service"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "keelson_messages_dead_lettered_total",
                "Messages sent to a DLQ; reason: exhausted (retries used up), malformed, permanent.",
                ["topic", "service", "reason"],
                registry=registry,
            ),
            handler_seconds=LatencyHistogram(
                "keelson_handler_duration_seconds",
                "Time a handler took; outcome: ok, failed.",
                ["topic", "service", "outcome"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            lag=Gauge(
                "keelson_consumer_lag",
                "Messages behind the end of an assigned partition (of a main or retry topic).",
                ["topic", "partition", "service"],
                registry=registry,
            ),
            dlq_depth=Gauge(
                "keelson_dlq_depth",
                "Messages retained in a subscription's DLQ.",
                ["topic", "service"],
                registry=registry,
            ),
        )


@cache
def default_metrics() -> MessagingMetrics:
    """The process-wide metrics on prometheus-client's default registry, created once."""
    return MessagingMetrics.create()
