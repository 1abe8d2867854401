"""The Kafka admin adapter's deadlines: per call, and for the whole session of one reconcile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from keelson.kafka import admin as kafka_admin
from keelson.kafka.admin import BrokerUnavailable, KafkaAdmin


class SlowBroker:
    """Stands in for AIOKafkaAdminClient: every request is answered, each after `delay`."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = 0

    async def _answer(self, value: Any) -> Any:
        self.requests += 1
        await asyncio.sleep(self.delay)
        return value

    async def start(self) -> None:
        await self._answer(None)

    async def close(self) -> None:
        return None

    def list_topics(self) -> Any:
        return self._answer(["shop.order.created"])

    def describe_topics(self, names: list[str]) -> Any:
        partition = {"replicas": [1]}
        return self._answer([{"topic": n, "error_code": 0, "partitions": [partition]} for n in names])

    def describe_configs(self, _resources: Any) -> Any:
        return self._answer([])


def _admin(broker: SlowBroker, session_deadline: float) -> KafkaAdmin:
    admin = KafkaAdmin("127.0.0.1:1", session_deadline=session_deadline)
    admin._client = broker
    return admin


async def test_a_broker_slow_on_every_call_cannot_stretch_the_session() -> None:
    broker = SlowBroker(delay=0.3)  # each call well within its own 10 s deadline
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        async with _admin(broker, session_deadline=0.8) as admin:
            await admin.describe(["shop.order.created"])
            await admin.describe(["shop.order.created"])
    assert time.monotonic() - started < 1.0
    assert broker.requests <= 4


async def test_a_call_that_never_returns_is_cut_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_admin, "DEADLINE_SECONDS", 0.2)
    broker = SlowBroker(delay=3600)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="cannot reach the brokers"):
        async with _admin(broker, session_deadline=30):
            pass
    assert time.monotonic() - started < 0.5


async def test_a_healthy_session_is_unaffected() -> None:
    async with _admin(SlowBroker(delay=0), session_deadline=1) as admin:
        live = await admin.describe(["shop.order.created", "shop.other"])
    assert list(live) == ["shop.order.created"] and live["shop.order.created"].partitions == 1
