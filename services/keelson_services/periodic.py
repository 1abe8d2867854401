"""A background job that runs one round at a jittered interval, as a lifecycle component.

Jittered (0.5 to 1.5 times the interval), so replicas started together do not run in lockstep. A
round that fails is logged and the next one comes as usual: a background job never ends the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable


class Periodic:
    def __init__(
        self, name: str, interval_seconds: float, round_: Callable[[], Awaitable[object]], log: logging.Logger
    ) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self._round = round_
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds * (0.5 + random.random()))
            try:
                await self._round()
            except Exception:
                self._log.exception("%s failed; trying again next round", self.name)
