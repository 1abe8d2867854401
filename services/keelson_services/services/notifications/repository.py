"""The recipients and notifications tables. Every query binds its values as parameters."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from keelson_services.db import Database


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str | None
    name: str | None
    phone: str | None

    def address(self, channel: str) -> str | None:
        """Where `channel` reaches this user (push goes to the user's devices, by user id)."""
        return {"email": self.email, "sms": self.phone, "push": self.user_id}.get(channel)

    def context(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "email": self.email, "name": self.name or "", "phone": self.phone}


class NotificationRepository:
    def __init__(self, db: Database, *, lease: timedelta) -> None:
        self.db = db
        self.lease = lease

    async def remember(self, user_id: str, *, email: str | None, name: str | None, phone: str | None) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                """
                INSERT INTO recipients (user_id, email, name, phone) VALUES (%s, %s, %s, %s)
                ON CONFLICT (user_id) DO UPDATE SET
                    email = coalesce(EXCLUDED.email, recipients.email),
                    name = coalesce(EXCLUDED.name, recipients.name),
                    phone = coalesce(EXCLUDED.phone, recipients.phone),
                    updated_at = now()
                """,
                [user_id, email, name, phone],
            )

    async def recipient(self, user_id: str) -> Recipient | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT * FROM recipients WHERE user_id = %s", [user_id])
            row = await cursor.fetchone()
        return Recipient(row["user_id"], row["email"], row["name"], row["phone"]) if row else None

    async def claim(
        self,
        *,
        event_id: str,
        event_type: str,
        channel: str,
        template: str,
        user_id: str,
        recipient: str,
        subject: str | None,
        body: str,
        trace_id: str | None,
    ) -> UUID | None:
        """The notification's id, recorded `sending` before it is sent, if it is new or not sent
        yet; None when it was sent. Call it holding `sending(event_id, channel)`: then a row
        found `sending` is one whose sender died mid-send (a live sender holds the lock), and it
        is sent again under the same id (so the same Message-ID)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                INSERT INTO notifications (event_id, event_type, channel, template, user_id, recipient, subject, body,
                                           trace_id, status, claimed_until)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'sending', now() + %s)
                ON CONFLICT ON CONSTRAINT notifications_once DO UPDATE
                    SET status = 'sending', attempts = notifications.attempts + 1, error = NULL,
                        claimed_until = EXCLUDED.claimed_until
                    WHERE notifications.status <> 'sent'
                RETURNING id
                """,
                [event_id, event_type, channel, template, user_id, recipient, subject, body, trace_id, self.lease],
            )
            row = await cursor.fetchone()
        return row["id"] if row else None

    @asynccontextmanager
    async def sending(self, event_id: str, channel: str) -> AsyncIterator[bool]:
        """Hold the send lock of (event, channel) for the block; yields whether this caller got it
        (False: another consumer is sending it right now).

        Why a lock and not only the `sending` row's lease: a sender killed between its claim and
        its record of the outcome leaves the row `sending`, and its event is redelivered after
        the restart. Judged by the lease (60 s) that row looked "being sent by another consumer"
        until the event's few retries (seconds apart) were used up, and the event went to the DLQ:
        the row stayed `sending` for good and the email was never sent, or never recorded. The
        lock is a transaction-level advisory lock held on a connection of its own for the whole
        claim-send-record, so PostgreSQL drops it the moment its holder dies: a `sending` row
        whose lock is free is a dead sender's, and may be sent again at once."""
        async with self.db.connection() as conn:  # the transaction holds the lock until the block ends
            cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS mine", [_send_lock(event_id, channel)])
            row = await cursor.fetchone()
            yield bool(row and row["mine"])

    async def status(self, event_id: str, channel: str) -> str | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT status FROM notifications WHERE event_id = %s AND channel = %s", [event_id, channel]
            )
            row = await cursor.fetchone()
        return row["status"] if row else None

    async def sent(self, notification_id: UUID, provider_id: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE notifications SET status = 'sent', sent_at = now(), provider_id = %s WHERE id = %s",
                [provider_id, notification_id],
            )

    async def failed(self, notification_id: UUID, error: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE notifications SET status = 'failed', error = %s WHERE id = %s", [error[:2000], notification_id]
            )

    async def history(self, user_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT id, event_type, channel, template, status, subject, recipient, created_at, sent_at
                FROM notifications WHERE user_id = %s ORDER BY created_at DESC, id LIMIT %s OFFSET %s
                """,
                [user_id, limit, offset],
            )
            return list(await cursor.fetchall())


def _send_lock(event_id: str, channel: str) -> int:
    """The advisory lock key of one notification (64 bits of a hash of its unique key)."""
    digest = hashlib.sha256(f"keelson.notifications:{event_id}:{channel}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
