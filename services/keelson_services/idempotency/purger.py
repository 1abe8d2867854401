"""The background job that forgets idempotency keys after their retention (see store.py).

Every replica runs it, at a jittered interval: the purge is one DELETE, safe to run concurrently
(rows deleted twice are simply not found), so no coordination between replicas is needed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from keelson_services.idempotency.store import RETENTION, IdempotencyStore
from keelson_services.periodic import Periodic

log = logging.getLogger("keelson.idempotency")


class IdempotencyPurger:
    def __init__(
        self, store: IdempotencyStore, *, retention: timedelta = RETENTION, interval_seconds: float = 3600.0
    ) -> None:
        self.store = store
        self.retention = retention
        self._job = Periodic("idempotency-purger", interval_seconds, self.purge_once, log)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def purge_once(self) -> int:
        purged = await self.store.purge(self.retention)
        if purged:
            log.info("purged %d idempotency keys older than %s", purged, self.retention)
        return purged
