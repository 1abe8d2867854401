"""Offsets waiting for the forwards of their batch to be acknowledged.

The consumer does not wait for a batch's forwards (failed messages sent to a retry topic or the
DLQ) before it fetches the next batch: that would cost a broker round trip on every batch that
holds a single failure. Instead each batch joins this queue with the offsets it may commit and
the deliveries those depend on; offsets are released in batch order, and only once every
delivery of their batch and of all batches before it has succeeded. If one fails, nothing of it
or after it is committed, and the consumer reads again from the first offset not committed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class ForwardFailed(Exception):
    """A failed message could not be forwarded; `rewind` says where to read again from."""

    def __init__(self, error: BaseException, rewind: dict[Any, int]) -> None:
        super().__init__(f"forwarding a failed message did not succeed: {error or type(error).__name__}")
        self.rewind = rewind


@dataclass
class _Batch(Generic[P]):
    offsets: dict[P, int]  # the next offset to commit, per partition
    firsts: dict[P, int]  # the first offset read, per partition
    deliveries: list[asyncio.Future[Any]]

    def settled(self) -> bool:
        return all(d.done() for d in self.deliveries)

    def error(self) -> BaseException | None:
        for d in self.deliveries:
            if d.cancelled():
                return asyncio.CancelledError("delivery cancelled")
            if d.exception() is not None:
                return d.exception()
        return None


class CommitQueue(Generic[P]):
    def __init__(self) -> None:
        self._batches: deque[_Batch[P]] = deque()

    def __len__(self) -> int:
        return len(self._batches)

    def add(self, offsets: dict[P, int], firsts: dict[P, int], deliveries: Iterable[asyncio.Future[Any]]) -> None:
        self._batches.append(_Batch(offsets, firsts, list(deliveries)))

    def oldest_deliveries(self) -> list[asyncio.Future[Any]]:
        return self._batches[0].deliveries if self._batches else []

    def settled(self) -> dict[P, int]:
        """The offsets that may be committed now (and are no longer queued). Raises
        `ForwardFailed` when a delivery failed; the queue is then empty."""
        offsets: dict[P, int] = {}
        while self._batches and self._batches[0].settled():
            error = self._batches[0].error()
            if error is not None:
                raise ForwardFailed(error, self.drop())
            offsets.update(self._batches.popleft().offsets)
        return offsets

    def drop(self) -> dict[P, int]:
        """Forget every queued batch; returns where to read again from, per partition."""
        rewind: dict[P, int] = {}
        for batch in self._batches:
            for partition, offset in batch.firsts.items():
                rewind[partition] = min(offset, rewind.get(partition, offset))
        self._batches.clear()
        return rewind
