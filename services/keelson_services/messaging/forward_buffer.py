"""Failed messages on their way to a retry topic or the DLQ, gathered over a few batches.

Each record batch handed to the producer costs about as much as the handling of dozens of
messages, so sending the failures of every fetched batch at once would make a 1 % failure rate
cost a good part of the throughput. Instead they wait here, per target partition, for a short
window (or until many have gathered) and go out as one record batch per partition. Every batch
of offsets that holds one of them waits, in the commit queue, on the window's future, which
completes when the brokers have acknowledged everything that was sent with it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from keelson_services.messaging.headers import Headers

Message = tuple[bytes | None, bytes | None, Headers]


class BatchSender(Protocol):
    async def send_batch(self, topic: str, partition: int, messages: list[Message]) -> list[asyncio.Future[Any]]: ...


class ForwardBuffer:
    def __init__(self, producer: BatchSender, *, window_seconds: float, max_messages: int = 500) -> None:
        self._producer = producer
        self.window_seconds = window_seconds
        self._max_messages = max_messages
        self._pending: dict[tuple[str, int], list[Message]] = {}
        self._count = 0
        self._since = 0.0
        self._sent: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return self._count

    def add(self, topic: str, partition: int, message: Message, *, now: float) -> asyncio.Future[None]:
        """Queue a message for `topic`'s `partition`; the future completes when it is acknowledged."""
        if self._sent is None:
            self._sent = asyncio.get_running_loop().create_future()
            self._since = now
        self._pending.setdefault((topic, partition), []).append(message)
        self._count += 1
        return self._sent

    def wait(self, now: float) -> float | None:
        """Seconds until the messages waiting here are due to be sent, None if there are none."""
        if self._sent is None:
            return None
        return 0.0 if self._count >= self._max_messages else max(0.0, self._since + self.window_seconds - now)

    async def send(self) -> None:
        """Hand everything waiting to the producer now."""
        pending, sent = self._pending, self._sent
        self._pending, self._sent, self._count = {}, None, 0
        if sent is None:
            return
        try:
            deliveries = [
                delivery
                for (topic, partition), messages in pending.items()
                for delivery in await self._producer.send_batch(topic, partition, messages)
            ]
        except Exception as exc:
            sent.set_exception(exc)
            raise

        def settle(acknowledged: asyncio.Future[list[Any]]) -> None:
            if sent.done():
                return
            if acknowledged.cancelled():
                sent.set_exception(asyncio.CancelledError("a forward was cancelled"))
            elif acknowledged.exception() is not None:
                sent.set_exception(acknowledged.exception())  # type: ignore[arg-type]
            else:
                sent.set_result(None)

        asyncio.gather(*deliveries).add_done_callback(settle)

    def discard(self) -> None:
        """Forget what waits (its batches are read again)."""
        if self._sent is not None and not self._sent.done():
            self._sent.cancel()
        self._pending, self._sent, self._count = {}, None, 0
