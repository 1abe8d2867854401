"""A de-duplicating work queue with per-key backoff, in the manner of client-go's workqueue.

Many events for one platform (a burst of child updates) collapse into one pending reconcile, a
platform is never reconciled by two workers at once, and a key added while it is being processed
is processed once more afterwards, so no event is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable

from keelson.controller.metrics import QUEUE_DEPTH

DEFAULT_BACKOFFS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0)


class WorkQueue:
    def __init__(self, backoffs: Iterable[float] = DEFAULT_BACKOFFS) -> None:
        self._backoffs = tuple(backoffs)
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._pending: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}

    def add(self, key: Hashable) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)
            QUEUE_DEPTH.set(len(self._pending))

    def add_after(self, key: Hashable, delay: float) -> None:
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def retry(self, key: Hashable) -> float:
        """Schedule the key again after its next backoff; returns the delay."""
        count = self._failures.get(key, 0)
        self._failures[key] = count + 1
        delay = self._backoffs[min(count, len(self._backoffs) - 1)]
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        """Reset the key's backoff after a success."""
        self._failures.pop(key, None)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._pending.discard(key)
        QUEUE_DEPTH.set(len(self._pending))
        self._active.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._pending)
