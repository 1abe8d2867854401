"""The background job that forgets idempotency keys after their retention (see store.py).

Every replica runs it, at a jittered interval: the purge is one DELETE, safe to run concurrently
(rows deleted twice are simply not found), so no coordination between replicas is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

from keelson_services.idempotency.store import RETENTION, IdempotencyStore

log = logging.getLogger("keelson.idempotency")


class IdempotencyPurger:
    def __init__(
        self, store: IdempotencyStore, *, retention: timedelta = RETENTION, interval_seconds: float = 3600.0
    ) -> None:
        self.store = store
        self.retention = retention
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="idempotency-purger")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def purge_once(self) -> int:
        purged = await self.store.purge(self.retention)
        if purged:
            log.info("purged %d idempotency keys older than %s", purged, self.retention)
        return purged

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds * (0.5 + random.random()))
            try:
                await self.purge_once()
            except Exception:
                log.exception("purging idempotency keys failed; trying again next round")
