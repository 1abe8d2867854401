"""The partitions of retry topics that wait for their first message to fall due.

A retry topic's messages become due in the order they were written (each waits the same delay),
so it is enough to hold a partition until its head message is due: the consumer pauses that one
partition, and every other partition, the main topics' above all, keeps flowing. The records
already fetched behind the head wait here, so that they are not fetched and decoded again.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)
R = TypeVar("R")


class RetryGate(Generic[P, R]):
    def __init__(self) -> None:
        self._held: dict[P, tuple[float, list[R]]] = {}

    def hold(self, partition: P, due: float, waiting: list[R]) -> None:
        """Hold `partition` until `due`, with the records fetched from it that wait (its head first)."""
        self._held[partition] = (due, waiting)

    def release(self, now: float) -> list[tuple[P, list[R]]]:
        """The held partitions whose head is due at `now`, with their waiting records; they are no
        longer held."""
        ready = [(p, waiting) for p, (due, waiting) in self._held.items() if due <= now]
        for partition, _ in ready:
            del self._held[partition]
        return ready

    def wait(self, now: float) -> float | None:
        """Seconds until the next held partition is due (0 if one is), None if none is held."""
        return max(0.0, min(due for due, _ in self._held.values()) - now) if self._held else None

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions to read again from an earlier offset, or lost in a rebalance (their new
        owner holds them itself)."""
        for partition in partitions:
            self._held.pop(partition, None)

    def held(self) -> dict[P, float]:
        return {partition: due for partition, (due, _) in self._held.items()}
