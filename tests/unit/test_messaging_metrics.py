import pytest
from prometheus_client import CollectorRegistry, generate_latest

from keelson_services.messaging.metrics import MessagingMetrics


def test_the_latency_histogram_is_a_prometheus_histogram() -> None:
    registry = CollectorRegistry()
    metrics = MessagingMetrics.create(registry)
    series = metrics.handler_seconds.labels("shop.order.created", "notifications", "ok")
    for seconds in (0.0002, 0.0005, 0.003, 0.2, 42.0):
        series.observe(seconds)
    labels = {"topic": "shop.order.created", "service": "notifications", "outcome": "ok"}
    sample = registry.get_sample_value
    assert sample("keelson_handler_duration_seconds_bucket", {**labels, "le": "0.0005"}) == 2  # le is inclusive
    assert sample("keelson_handler_duration_seconds_bucket", {**labels, "le": "0.005"}) == 3
    assert sample("keelson_handler_duration_seconds_bucket", {**labels, "le": "10.0"}) == 4
    assert sample("keelson_handler_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 5
    assert sample("keelson_handler_duration_seconds_count", labels) == 5
    assert sample("keelson_handler_duration_seconds_sum", labels) == pytest.approx(42.2037)
    assert b"# TYPE keelson_handler_duration_seconds histogram" in generate_latest(registry)


def test_label_counts_are_checked_and_names_are_unique() -> None:
    registry = CollectorRegistry()
    metrics = MessagingMetrics.create(registry)
    with pytest.raises(ValueError, match="takes labels"):
        metrics.handler_seconds.labels("only-one")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        MessagingMetrics.create(registry)
