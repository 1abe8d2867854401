from dataclasses import dataclass

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.render import RenderContext
from keelson.render.configmap import config_data
from keelson.topics import subscriptions
from keelson_services.messaging.failures import due_at
from keelson_services.messaging.retry_gate import RetryGate
from keelson_services.messaging.schedule import Hop, hops, next_topic, retry_delays, subscription
from keelson_services.settings import Settings
from tests.cases.invalid_platforms import example

TOPIC = "ecommerce.order.created"


@dataclass
class FakeClock:
    t: float = 1_000_000.0

    def now(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("backoff", "retries", "delays"),
    [
        ((1, 2, 4, 8), 3, (1, 2, 4)),
        ((1, 2, 4, 8), 4, (1, 2, 4, 8)),
        ((1, 2, 4, 8), 6, (1, 2, 4, 8, 8, 8)),  # the last delay repeats
        ((5,), 2, (5, 5)),
        ((1, 2), 0, ()),
    ],
)
def test_delays_follow_the_resilience_schedule(backoff: tuple[int, ...], retries: int, delays: tuple[int, ...]) -> None:
    assert retry_delays(backoff, retries) == delays


def test_a_schedule_without_delays_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one delay"):
        retry_delays((), 3)


def test_a_subscription_walks_its_retry_topics_then_the_dlq() -> None:
    sub = subscription(TOPIC, "notifications", backoff_seconds=(1, 2, 4, 8), max_retries=3)
    assert hops(sub) == [
        Hop(TOPIC, 0, 0),
        Hop(f"{TOPIC}.notifications.retry-1", 1, 1),
        Hop(f"{TOPIC}.notifications.retry-2", 2, 2),
        Hop(f"{TOPIC}.notifications.retry-3", 3, 4),
    ]
    assert next_topic(sub, 0) == (f"{TOPIC}.notifications.retry-1", 1)
    assert next_topic(sub, 2) == (f"{TOPIC}.notifications.retry-3", 4)
    assert next_topic(sub, 3) == (f"{TOPIC}.notifications.dlq", None)


def test_without_retries_failures_go_to_the_dlq() -> None:
    sub = subscription(TOPIC, "notifications", backoff_seconds=(1,), max_retries=0)
    assert hops(sub) == [Hop(TOPIC, 0, 0)] and next_topic(sub, 0) == (sub.dlq, None)


def _platform(mutate=None):  # type: ignore[no-untyped-def]
    doc = example()
    if mutate:
        mutate(doc["spec"])
    return MicroservicePlatform.from_object(doc).spec


@pytest.mark.parametrize("retries", [3, 4, 6])
def test_settings_from_the_rendered_env_give_the_operators_subscriptions(retries: int) -> None:
    """The library reads the ConfigMap the operator renders, and must arrive at exactly the retry
    topics, delays and DLQs the operator provisioned."""

    def mutate(spec):  # type: ignore[no-untyped-def]
        spec["defaults"]["resilience"]["retry"]["maxRetries"] = retries

    spec = _platform(mutate)
    ctx = RenderContext(name="shop", namespace="shop", spec=spec)
    for svc in ctx.services:
        settings = Settings.from_env(config_data(ctx, svc))
        assert settings.subscriptions() == [s for s in subscriptions(spec) if s.service == svc.name]
    notifications = Settings.from_env(config_data(ctx, ctx.service("notifications")))
    assert notifications.group_id == "ecommerce.notifications"
    assert notifications.kafka_bootstrap == "kafka.kafka:9092"
    assert len(notifications.subscriptions()) == 11


def test_the_gate_holds_partitions_until_their_head_is_due() -> None:
    clock = FakeClock()
    gate: RetryGate[str, int] = RetryGate()
    assert gate.wait(clock.now()) is None and gate.release(clock.now()) == []
    gate.hold("retry-1/0", clock.now() + 1, [10, 11])
    gate.hold("retry-2/0", clock.now() + 2, [20])
    assert gate.wait(clock.now()) == 1
    clock.t += 0.5
    assert gate.release(clock.now()) == [] and gate.wait(clock.now()) == 0.5
    clock.t += 0.5
    assert gate.release(clock.now()) == [("retry-1/0", [10, 11])]  # with the records that waited
    assert gate.held() == {"retry-2/0": 1_000_002.0}
    gate.forget(["retry-2/0", "never-held"])
    assert gate.held() == {} and gate.wait(clock.now()) is None


def test_a_due_time_comes_from_the_header_else_from_the_write_time() -> None:
    assert due_at([("keelson-not-before", b"1000002500")], timestamp_ms=999_000_000, delay=4) == 1_000_002.5
    assert due_at([], timestamp_ms=1_000_000_000, delay=4) == 1_000_004.0
    assert due_at([("keelson-not-before", b"soon")], timestamp_ms=1_000_000_000, delay=2) == 1_000_002.0
