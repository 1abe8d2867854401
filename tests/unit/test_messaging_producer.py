from collections.abc import AsyncIterator
from typing import Any

import pytest

from keelson_services.messaging.producer import EventProducer, UndeclaredTopic


@pytest.fixture
async def producer(request: pytest.FixtureRequest) -> AsyncIterator[EventProducer]:
    """Never started: these checks come before anything is sent."""
    options: dict[str, Any] = getattr(request, "param", {})
    made = EventProducer(bootstrap_servers="127.0.0.1:1", source="orders", **options)
    yield made
    await made.stop()


@pytest.mark.parametrize("producer", [{"domain": "shop", "publishes": {"shop.order.created"}}], indirect=True)
async def test_publishing_an_undeclared_event_is_refused(producer: EventProducer) -> None:
    with pytest.raises(UndeclaredTopic, match=r"orders does not publish shop\.order\.paid"):
        await producer.publish("order.paid", {"orderId": "o-1"}, key="o-1")


async def test_short_names_need_a_domain(producer: EventProducer) -> None:
    with pytest.raises(ValueError, match="not a full topic name"):
        await producer.publish("order.paid", {}, key="o-1")


@pytest.mark.parametrize("producer", [{"acks": 1, "enable_idempotence": False}], indirect=True)
async def test_acks_and_idempotence_cannot_be_weakened(producer: EventProducer) -> None:
    inner = producer._producer
    assert inner._txn_manager is not None  # the idempotent producer's sequence numbers
    assert inner._sender._acks == -1  # all in-sync replicas
