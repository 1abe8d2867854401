"""The outbox relay: publishes what services wrote to their outbox, after the commit.

One task per replica. It wakes on `NOTIFY keelson_outbox` (sent by `Outbox.add`, delivered on
commit) or every `poll_seconds`, and drains the outbox in id order, in batches. A batch runs in a
transaction holding a transaction-level advisory lock, so one replica publishes at a time and the
events of one key keep their order: within a batch, events of different keys go out concurrently,
events of one key one after the other, each acknowledged by the brokers (`acks=all`) before its
row is marked published. A crash between the publish and the mark re-publishes the event with the
same id: at least once, never lost. Kafka being down delays events, it does not fail requests.
Published rows are deleted after `retention`; until then they keep no secret field of their data
(`SECRET_FIELDS`, dropped when the row is marked published).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from functools import cache

from prometheus_client import Counter, Gauge

from keelson_services.db import Database
from keelson_services.events.outbox import CHANNEL, SECRET_FIELDS, OutboxEvent
from keelson_services.messaging import EventProducer
from keelson_services.observability import tracing

log = logging.getLogger("keelson.outbox")

LOCK_KEY = int.from_bytes(hashlib.sha256(b"keelson.outbox.relay").digest()[:8], "big", signed=True)


@cache
def _metrics() -> tuple[Counter, Gauge]:
    return (
        Counter("keelson_outbox_published_total", "Outbox events published.", ["service", "event"]),
        Gauge("keelson_outbox_pending", "Outbox events written but not yet published.", ["service"]),
    )


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        producer_factory: Callable[[], EventProducer] | None,
        *,
        service: str,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        error_backoff_seconds: float = 1.0,
        retention: timedelta = timedelta(days=1),
    ) -> None:
        """`producer_factory`: None when the platform has no Kafka (events then wait in the outbox)."""
        self.db = db
        self.service = service
        self._producer_factory = producer_factory
        self._producer: EventProducer | None = None
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.error_backoff_seconds = error_backoff_seconds
        self.retention = retention
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._published, self._pending = _metrics()

    def start(self) -> None:
        if self._producer_factory is None:
            log.warning("outbox: no Kafka (KEELSON_KAFKA_BOOTSTRAP unset): events stay in the outbox")
            return
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-outbox-relay")
        self._listener = asyncio.create_task(self._listen(), name=f"{self.service}-outbox-listen")

    async def stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._listener = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    def wake(self) -> None:
        """Drain now (the NOTIFY does this for commits; this is for the impatient)."""
        self._wake.set()

    async def _run(self) -> None:
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                producer = await self._started_producer()
                while await self.drain(producer) == self.batch_size:
                    pass
                if loop.time() - last_purge > 3600:
                    await self.purge()
                    last_purge = loop.time()
            except Exception as exc:
                log.warning("outbox: publishing failed (%s: %s); trying again", type(exc).__name__, exc)
                await asyncio.sleep(self.error_backoff_seconds)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def _started_producer(self) -> EventProducer:
        if self._producer is None:
            assert self._producer_factory is not None
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _listen(self) -> None:
        """Turn the commits' NOTIFYs into wake-ups; reconnect after a database restart."""
        while True:
            try:
                conn = await self.db.direct(autocommit=True)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._wake.set()  # anything committed while we were not listening
                    async for _ in conn.notifies():
                        self._wake.set()
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox: listener lost (%s); reconnecting", exc)
                await asyncio.sleep(self.error_backoff_seconds)

    async def drain(self, producer: EventProducer) -> int:
        """Publish one batch of pending events; returns how many were published (0 when another
        replica holds the relay lock)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS mine", [LOCK_KEY])
            row = await cursor.fetchone()
            if row is None or not row["mine"]:
                return 0
            cursor = await conn.execute(
                "SELECT * FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT %s", [self.batch_size]
            )
            events = [OutboxEvent.of(r) for r in await cursor.fetchall()]
            if not events:
                self._pending.labels(self.service).set(0)
                return 0
            by_key: defaultdict[str, list[OutboxEvent]] = defaultdict(list)
            for event in events:
                by_key[event.key].append(event)
            published: list[int] = []
            results = await asyncio.gather(
                *(self._publish_in_order(producer, group, published) for group in by_key.values()),
                return_exceptions=True,
            )
            if published:
                await conn.execute(
                    "UPDATE outbox SET published_at = now(), data = data - %s::text[] WHERE id = ANY(%s)",
                    [list(SECRET_FIELDS), published],
                )
            cursor = await conn.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
            pending = await cursor.fetchone()
            self._pending.labels(self.service).set(pending["n"] if pending else 0)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(published)

    async def _publish_in_order(self, producer: EventProducer, events: list[OutboxEvent], done: list[int]) -> None:
        for event in events:
            await producer.publish(
                event.event,
                event.data,
                key=event.key,
                event_id=event.event_id,
                trace=tracing.parse(event.traceparent),
            )
            done.append(event.id)
            self._published.labels(self.service, event.event).inc()

    async def purge(self) -> int:
        async with self.db.connection() as conn:
            cursor = await conn.execute("DELETE FROM outbox WHERE published_at < now() - %s", [self.retention])
            return cursor.rowcount

    async def wait_idle(self, within: float = 10.0) -> None:
        """Tests: until nothing is pending (polling the table, with a deadline)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            async with self.db.connection() as conn:
                cursor = await conn.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
                row = await cursor.fetchone()
            if row is not None and row["n"] == 0:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the outbox still has {row['n'] if row else '?'} event(s) after {within} s")
            self.wake()
            await asyncio.sleep(0.05)
