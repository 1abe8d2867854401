"""The channels' addresses a user gives the service itself: a phone number, proven theirs by a
code sent to it by SMS, and Web Push devices; and what they turned off (preferences). Every
query binds its values as parameters.

A verification code is 6 digits, kept only as a salted SHA-256 hash, valid for a short time and
a few wrong attempts: at most `attempts` guesses out of a million per code sent."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from keelson_services.db import Database
from keelson_services.services.notifications.senders import Device
from keelson_services.services.notifications.webpush import client_keys

CODE_DIGITS = 6
# Devices per user: a person has a few browsers; each device is a send per push, and each push
# service a downstream of the service's HTTP client (a breaker, metrics): not without bound.
MAX_DEVICES = 10


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(code: str, salt: bytes) -> bytes:
    return hashlib.sha256(salt + code.encode()).digest()


class Verified(Enum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    NONE_PENDING = "none_pending"


@dataclass(frozen=True)
class Verification:
    outcome: Verified
    phone: str | None = None
    attempts_left: int = 0


class Contacts:
    def __init__(self, db: Database, *, code_ttl: timedelta, attempts: int, interval: timedelta) -> None:
        self.db = db
        self.code_ttl = code_ttl
        self.attempts = attempts
        self.interval = interval

    # Phone numbers.

    async def start_verification(self, user_id: str, phone: str) -> str | float:
        """A new code for (user, phone), replacing any pending one: the code to send; or, when
        the last code is younger than the interval, the seconds to wait. Each code is an SMS
        someone pays for, to a number the caller chose: a caller may not have them sent in a loop."""
        code, salt = new_code(), secrets.token_bytes(16)
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                INSERT INTO phone_verifications (user_id, phone, code_hash, salt, attempts_left, expires_at)
                VALUES (%s, %s, %s, %s, %s, now() + %s)
                ON CONFLICT (user_id) DO UPDATE SET phone = EXCLUDED.phone, code_hash = EXCLUDED.code_hash,
                    salt = EXCLUDED.salt, attempts_left = EXCLUDED.attempts_left, expires_at = EXCLUDED.expires_at,
                    created_at = now()
                    WHERE phone_verifications.created_at <= now() - %s
                RETURNING user_id
                """,
                [user_id, phone, code_hash(code, salt), salt, self.attempts, self.code_ttl, self.interval],
            )
            if await cursor.fetchone() is not None:
                return code
            cursor = await conn.execute(
                """
                SELECT extract(epoch FROM created_at + %s - now())::float AS wait
                FROM phone_verifications WHERE user_id = %s
                """,
                [self.interval, user_id],
            )
            row = await cursor.fetchone()
        return max(1.0, float(row["wait"])) if row else 1.0

    async def cancel_verification(self, user_id: str) -> None:
        """Drop a pending code that was never sent: the caller may ask again at once."""
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM phone_verifications WHERE user_id = %s", [user_id])

    async def verify(self, user_id: str, code: str) -> Verification:
        """Check `code`; when right, the number becomes the user's verified phone."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT phone, code_hash, salt, attempts_left, expires_at < now() AS expired
                FROM phone_verifications WHERE user_id = %s FOR UPDATE
                """,
                [user_id],
            )
            row = await cursor.fetchone()
            if row is None or row["attempts_left"] <= 0:
                return Verification(Verified.NONE_PENDING)
            if row["expired"]:
                await conn.execute("DELETE FROM phone_verifications WHERE user_id = %s", [user_id])
                return Verification(Verified.EXPIRED)
            if not hmac.compare_digest(code_hash(code, bytes(row["salt"])), bytes(row["code_hash"])):
                left = row["attempts_left"] - 1
                if left > 0:
                    await conn.execute(
                        "UPDATE phone_verifications SET attempts_left = %s WHERE user_id = %s", [left, user_id]
                    )
                else:
                    await conn.execute("DELETE FROM phone_verifications WHERE user_id = %s", [user_id])
                return Verification(Verified.WRONG, attempts_left=left)
            await conn.execute("DELETE FROM phone_verifications WHERE user_id = %s", [user_id])
            await conn.execute(
                """
                INSERT INTO recipients (user_id, phone, phone_verified_at) VALUES (%s, %s, now())
                ON CONFLICT (user_id) DO UPDATE SET phone = EXCLUDED.phone, phone_verified_at = now(),
                    updated_at = now()
                """,
                [user_id, row["phone"]],
            )
        return Verification(Verified.OK, phone=row["phone"])

    async def phone(self, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT phone, phone_verified_at IS NOT NULL AS verified FROM recipients WHERE user_id = %s",
                [user_id],
            )
            row = await cursor.fetchone()
            pending = await conn.execute(
                "SELECT phone FROM phone_verifications WHERE user_id = %s AND expires_at > now()", [user_id]
            )
            waiting = await pending.fetchone()
        return {
            "phone": row["phone"] if row else None,
            "verified": bool(row and row["verified"]),
            "pending": waiting["phone"] if waiting else None,
        }

    async def remove_phone(self, user_id: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM phone_verifications WHERE user_id = %s", [user_id])
            await conn.execute(
                "UPDATE recipients SET phone = NULL, phone_verified_at = NULL, updated_at = now() WHERE user_id = %s",
                [user_id],
            )

    # Push devices.

    async def add_device(self, user_id: str, *, endpoint: str, p256dh: str, auth: str) -> dict[str, Any] | None:
        """Register a subscription; the same endpoint again (a browser re-subscribing) updates
        its keys, and moves it to this user: an endpoint is one browser profile's. None when the
        user has `MAX_DEVICES` others already."""
        async with self.db.connection() as conn:
            # One registration per user at a time, so that two cannot both pass the count.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"keelson.devices:{user_id}"])
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM push_devices WHERE user_id = %s AND endpoint <> %s", [user_id, endpoint]
            )
            counted = await cursor.fetchone()
            if counted is not None and counted["n"] >= MAX_DEVICES:
                return None
            cursor = await conn.execute(
                """
                INSERT INTO push_devices (user_id, endpoint, p256dh, auth) VALUES (%s, %s, %s, %s)
                ON CONFLICT (endpoint) DO UPDATE SET user_id = EXCLUDED.user_id, p256dh = EXCLUDED.p256dh,
                    auth = EXCLUDED.auth
                RETURNING id, endpoint, created_at
                """,
                [user_id, endpoint, p256dh, auth],
            )
            row = await cursor.fetchone()
        assert row is not None
        return dict(row)

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, endpoint, created_at FROM push_devices WHERE user_id = %s ORDER BY created_at, id",
                [user_id],
            )
            return list(await cursor.fetchall())

    async def remove_device(self, user_id: str, device_id: UUID) -> bool:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM push_devices WHERE user_id = %s AND id = %s RETURNING id", [user_id, device_id]
            )
            return await cursor.fetchone() is not None

    async def devices(self, user_id: str) -> list[Device]:
        """The user's devices as the push sender needs them (`senders.Devices`)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, endpoint, p256dh, auth FROM push_devices WHERE user_id = %s ORDER BY created_at, id",
                [user_id],
            )
            rows = await cursor.fetchall()
        return [Device(r["id"], r["endpoint"], *client_keys(r["p256dh"], r["auth"])) for r in rows]

    async def forget_device(self, device_id: UUID) -> None:
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM push_devices WHERE id = %s", [device_id])

    # Preferences.

    async def preferences(self, user_id: str) -> dict[tuple[str, str], bool]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT channel, category, enabled FROM preferences WHERE user_id = %s", [user_id]
            )
            return {(r["channel"], r["category"]): r["enabled"] for r in await cursor.fetchall()}

    async def set_preferences(self, user_id: str, choices: Mapping[tuple[str, str], bool]) -> None:
        async with self.db.connection() as conn:
            for (channel, category), enabled in sorted(choices.items()):
                await conn.execute(
                    """
                    INSERT INTO preferences (user_id, channel, category, enabled) VALUES (%s, %s, %s, %s)
                    ON CONFLICT (user_id, channel, category) DO UPDATE SET enabled = EXCLUDED.enabled,
                        updated_at = now()
                    """,
                    [user_id, channel, category, enabled],
                )
