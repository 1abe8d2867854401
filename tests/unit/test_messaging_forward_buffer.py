import asyncio
from typing import Any

import pytest

from keelson_services.messaging.forward_buffer import ForwardBuffer, Message


class RecordingSender:
    """Stands in for the producer: records each record batch and lets the test acknowledge it."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, list[Message]]] = []
        self.deliveries: list[asyncio.Future[Any]] = []

    async def send_batch(self, topic: str, partition: int, messages: list[Message]) -> list[asyncio.Future[Any]]:
        self.batches.append((topic, partition, list(messages)))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return [delivery]


async def settle() -> None:
    """Let the callbacks chained on a delivery run."""
    for _ in range(5):
        await asyncio.sleep(0)


def _message(n: int) -> Message:
    return (f"k{n}".encode(), f"v{n}".encode(), [("traceparent", b"00-...")])


async def test_failures_gather_per_partition_and_go_out_as_one_batch_each() -> None:
    sender = RecordingSender()
    buffer = ForwardBuffer(sender, window_seconds=0.05)
    assert buffer.wait(now=100.0) is None
    first = buffer.add("t.retry-1", 0, _message(1), now=100.0)
    assert buffer.add("t.retry-1", 0, _message(2), now=100.01) is first  # one future per window
    buffer.add("t.dlq", 2, _message(3), now=100.02)
    assert buffer.wait(now=100.02) == pytest.approx(0.03) and len(buffer) == 3
    assert buffer.wait(now=100.06) == 0
    await buffer.send()
    assert sender.batches == [("t.retry-1", 0, [_message(1), _message(2)]), ("t.dlq", 2, [_message(3)])]
    assert not first.done() and buffer.wait(now=101.0) is None
    sender.deliveries[0].set_result(None)
    await settle()
    assert not first.done()  # the DLQ batch is not acknowledged yet
    sender.deliveries[1].set_result(None)
    await settle()
    assert first.done() and first.exception() is None


async def test_a_failed_delivery_fails_the_window() -> None:
    sender = RecordingSender()
    buffer = ForwardBuffer(sender, window_seconds=0.05)
    sent = buffer.add("t.retry-1", 0, _message(1), now=0.0)
    await buffer.send()
    sender.deliveries[0].set_exception(TimeoutError("no brokers"))
    await settle()
    assert isinstance(sent.exception(), TimeoutError)


async def test_many_failures_are_sent_without_waiting_out_the_window() -> None:
    buffer = ForwardBuffer(RecordingSender(), window_seconds=10, max_messages=2)
    buffer.add("t.dlq", 0, _message(1), now=0.0)
    buffer.add("t.dlq", 0, _message(2), now=0.0)
    assert buffer.wait(now=0.0) == 0


async def test_discarded_failures_are_never_sent() -> None:
    sender = RecordingSender()
    buffer = ForwardBuffer(sender, window_seconds=0.05)
    sent = buffer.add("t.dlq", 0, _message(1), now=0.0)
    buffer.discard()
    await buffer.send()
    assert sender.batches == [] and sent.cancelled() and len(buffer) == 0
