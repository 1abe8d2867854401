"""The transactional outbox: a service writes the events that announce a change in the same
database transaction as the change itself (`Outbox.add(conn, ...)`), and `OutboxRelay` publishes
them after the commit. So an event is published exactly when its change committed: never for a
rolled-back payment, and never lost to a crash or a broker outage between the commit and the
publish (the relay publishes it when it can; at least once, with the same event id, so consumers
deduplicate a re-publish like any redelivery).

`add` also issues `NOTIFY keelson_outbox`, which PostgreSQL delivers on commit only: the relays
of every replica wake at once instead of waiting for their next poll.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from keelson.api.v1alpha1 import topic_name
from keelson_services.db import Connection, Migration, load_migrations
from keelson_services.observability import tracing

CHANNEL = "keelson_outbox"
# Fields of an event's data that are bearer secrets (a one-time link's token): they travel in the
# published event, to the one consumer that needs them, and the relay drops them from the stored
# copy once it is published, so the database keeps no usable secret for the outbox's retention.
SECRET_FIELDS = ("token",)


def migrations() -> list[Migration]:
    """The outbox table; a service that publishes runs these with its own migrations."""
    return load_migrations("keelson_services.events", "outbox")


def current_traceparent() -> str | None:
    """The trace an event continues: the current one (the HTTP request's or the consumed message's)."""
    context = tracing.current()
    return context.header() if context is not None else None


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: str
    event: str
    key: str
    data: dict[str, Any]
    traceparent: str | None
    created_at: datetime
    published_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> OutboxEvent:
        return cls(
            id=row["id"],
            event_id=str(row["event_id"]),
            event=row["event"],
            key=row["key"],
            data=row["data"],
            traceparent=row["traceparent"],
            created_at=row["created_at"],
            published_at=row["published_at"],
        )


class Outbox:
    def __init__(self, *, domain: str, publishes: Collection[str] | None = None) -> None:
        """`publishes`: the full topic names the service may publish (None: any), so that an
        undeclared event fails the transaction that writes it, not the relay later."""
        self.domain = domain
        self.publishes = frozenset(publishes) if publishes is not None else None

    def topic(self, event: str) -> str:
        return topic_name(self.domain, event)

    def declares(self, event: str) -> bool:
        """Whether the platform lets this service publish `event` (`entity.action`)."""
        return self.publishes is None or self.topic(event) in self.publishes

    async def add(
        self,
        conn: Connection,
        event: str,
        data: Mapping[str, Any],
        *,
        key: str,
        event_id: str | uuid.UUID | None = None,
    ) -> str:
        """Write `event` (`entity.action`) with `data` in `conn`'s transaction; returns its event id.
        The current trace (request or consumed message) travels with it."""
        if not self.declares(event):
            topic = self.topic(event)
            raise ValueError(f"this service does not publish {topic}: add it to its publishes in the platform spec")
        cursor = await conn.execute(
            """
            INSERT INTO outbox (event_id, event, key, data, traceparent)
            VALUES (%s, %s, %s, %s, %s)
            RETURNING event_id
            """,
            [str(event_id or uuid.uuid4()), event, key, Jsonb(dict(data)), current_traceparent()],
        )
        row = await cursor.fetchone()
        await conn.execute(f"NOTIFY {CHANNEL}")
        assert row is not None
        return str(row["event_id"])
