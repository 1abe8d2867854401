"""The recipients and notifications tables, and the erasure of a user from every table of the
service. Every query binds its values as parameters."""

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
    phone_verified: bool = False
    locale: str | None = None
    has_devices: bool = False

    def address(self, channel: str) -> str | None:
        """Where `channel` reaches this user: SMS only a verified number, push the user's devices
        (by user id, when there are any)."""
        addresses = {
            "email": self.email,
            "sms": self.phone if self.phone_verified else None,
            "push": self.user_id if self.has_devices else None,
        }
        return addresses.get(channel)

    def context(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "name": self.name or "",
            "phone": self.phone,
            "locale": self.locale or "en",
        }


def user_hash(user_id: str) -> bytes:
    """How an erased user is remembered: not by their id."""
    return hashlib.sha256(f"keelson.notifications.erased:{user_id}".encode()).digest()


class NotificationRepository:
    def __init__(self, db: Database, *, lease: timedelta) -> None:
        self.db = db
        self.lease = lease

    async def remember(
        self, user_id: str, *, email: str | None, name: str | None, phone: str | None, locale: str | None = None
    ) -> None:
        """What `user.registered` says; a phone number from it is unverified (a new one
        replaces a verified one only unproven)."""
        async with self.db.connection() as conn:
            await conn.execute(
                """
                INSERT INTO recipients (user_id, email, name, phone, locale) VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (user_id) DO UPDATE SET
                    email = coalesce(EXCLUDED.email, recipients.email),
                    name = coalesce(EXCLUDED.name, recipients.name),
                    phone_verified_at = CASE WHEN EXCLUDED.phone IS DISTINCT FROM recipients.phone
                                              AND EXCLUDED.phone IS NOT NULL
                                        THEN NULL ELSE recipients.phone_verified_at END,
                    phone = coalesce(EXCLUDED.phone, recipients.phone),
                    locale = coalesce(EXCLUDED.locale, recipients.locale),
                    updated_at = now()
                """,
                [user_id, email, name, phone, locale],
            )

    async def recipient(self, user_id: str) -> Recipient | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT r.*, r.phone_verified_at IS NOT NULL AS phone_verified,
                       EXISTS (SELECT 1 FROM push_devices d WHERE d.user_id = r.user_id) AS has_devices
                FROM recipients r WHERE r.user_id = %s
                """,
                [user_id],
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        return Recipient(
            row["user_id"], row["email"], row["name"], row["phone"], row["phone_verified"], row["locale"],
            row["has_devices"],
        )  # fmt: skip

    async def allows(self, user_id: str, channel: str, category: str) -> bool:
        """Whether the user left (channel, category) on; on unless they turned it off."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT enabled FROM preferences WHERE user_id = %s AND channel = %s AND category = %s",
                [user_id, channel, category],
            )
            row = await cursor.fetchone()
        return bool(row["enabled"]) if row else True

    async def erase(self, user_id: str) -> None:
        """Forget the user (`user.deleted`): their addresses, pending code, devices, preferences,
        and what their notifications said and to where. The notification rows stay, emptied and
        no longer linked to the user: their (event, channel) keys keep a replayed event from
        sending again, and their counts by event type, channel and status are not personal."""
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM recipients WHERE user_id = %s", [user_id])
            await conn.execute("DELETE FROM phone_verifications WHERE user_id = %s", [user_id])
            await conn.execute("DELETE FROM push_devices WHERE user_id = %s", [user_id])
            await conn.execute("DELETE FROM preferences WHERE user_id = %s", [user_id])
            await conn.execute(
                """
                UPDATE notifications SET user_id = '', recipient = '', subject = NULL, body = '', error = NULL
                WHERE user_id = %s
                """,
                [user_id],
            )
            await conn.execute(
                "INSERT INTO erased_users (user_hash) VALUES (%s) ON CONFLICT DO NOTHING", [user_hash(user_id)]
            )

    async def erased(self, user_id: str) -> bool:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM erased_users WHERE user_hash = %s", [user_hash(user_id)])
            return await cursor.fetchone() is not None

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
        locale: str | None = None,
        template_version: int | None = None,
    ) -> UUID | None:
        """The notification's id, recorded `sending` before it is sent, if it is new or not sent
        yet; None when it was sent. Call it holding `sending(event_id, channel)`: then a row
        found `sending` is one whose sender died mid-send (a live sender holds the lock), and it
        is sent again under the same id (so the same Message-ID)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                INSERT INTO notifications (event_id, event_type, channel, template, user_id, recipient, subject, body,
                                           trace_id, status, claimed_until, locale, template_version)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'sending', now() + %s, %s, %s)
                ON CONFLICT ON CONSTRAINT notifications_once DO UPDATE
                    SET status = 'sending', attempts = notifications.attempts + 1, error = NULL,
                        claimed_until = EXCLUDED.claimed_until
                    WHERE notifications.status <> 'sent'
                RETURNING id
                """,
                [
                    event_id,
                    event_type,
                    channel,
                    template,
                    user_id,
                    recipient,
                    subject,
                    body,
                    trace_id,
                    self.lease,
                    locale,
                    template_version,
                ],
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
