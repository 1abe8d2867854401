"""One-time tokens sent by email: the email-verification and password-reset links.

A token is 256 random bits, stored only as its SHA-256 (`refresh_tokens.token_hash`), good for one
use and until it expires. Issuing a new one for the same purpose ends the earlier ones, so only
the latest email's link works. A token used, expired, superseded or unknown is refused with one
answer: the caller learns nothing about which, nor whether an account is behind it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from keelson_services.db import Connection
from keelson_services.errors import ApiError
from keelson_services.services.users.refresh_tokens import token_hash

Purpose = Literal["verify_email", "reset_password"]
# A prefix per purpose: a reset token pasted into verification is refused by its look alone,
# and a token found in a log or a paste is recognisable (secret scanners key on such prefixes).
PREFIXES: Mapping[Purpose, str] = {"verify_email": "kve_", "reset_password": "kpr_"}


class InvalidLinkError(ApiError):
    # 401 like an invalid refresh token: the token is the request's credential, and the request
    # itself is well formed (a 400 would call a valid request malformed).
    def __init__(self) -> None:
        super().__init__(401, "invalid_link", "The link is not valid (used, expired or unknown); request a new one")


def new_token(purpose: Purpose) -> str:
    return PREFIXES[purpose] + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class StoredToken:
    user_id: UUID
    expires_at: datetime
    used_at: datetime | None

    def usable(self, now: datetime) -> bool:
        """Not used (nor superseded, which marks it used) and not expired at `now`."""
        return self.used_at is None and now < self.expires_at


class AccountTokens:
    def __init__(self, *, ttl: Mapping[Purpose, timedelta]) -> None:
        self.ttl = ttl

    async def issue(self, conn: Connection, user_id: UUID, purpose: Purpose) -> tuple[str, datetime]:
        """A new token and when it expires, in `conn`'s transaction; earlier unused ones of the
        same purpose are ended."""
        await self.end(conn, user_id, purpose)
        token = new_token(purpose)
        cursor = await conn.execute(
            """
            INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at)
            VALUES (%s, %s, %s, now() + %s) RETURNING expires_at
            """,
            [token_hash(token), user_id, purpose, self.ttl[purpose]],
        )
        row = await cursor.fetchone()
        assert row is not None
        return token, row["expires_at"]

    async def issued_within(self, conn: Connection, user_id: UUID, purpose: Purpose, interval: timedelta) -> bool:
        """Whether an unused token of `purpose` was issued in the last `interval`: asking again
        that soon sends no second email (a mailbox is not to be flooded through us)."""
        cursor = await conn.execute(
            """
            SELECT 1 FROM account_tokens
            WHERE user_id = %s AND purpose = %s AND used_at IS NULL AND created_at > now() - %s
            """,
            [user_id, purpose, interval],
        )
        return await cursor.fetchone() is not None

    async def consume(self, conn: Connection, token: str, purpose: Purpose) -> UUID:
        """The user id of a usable `token` of `purpose`, which is used up in `conn`'s transaction
        (locked first, so two concurrent uses cannot both succeed)."""
        if not token.startswith(PREFIXES[purpose]):
            raise InvalidLinkError()
        cursor = await conn.execute(
            """
            SELECT user_id, expires_at, used_at, now() AS now FROM account_tokens
            WHERE token_hash = %s AND purpose = %s FOR UPDATE
            """,
            [token_hash(token), purpose],
        )
        row = await cursor.fetchone()
        if row is None:
            raise InvalidLinkError()
        stored = StoredToken(row["user_id"], row["expires_at"], row["used_at"])
        if not stored.usable(row["now"]):
            raise InvalidLinkError()
        await conn.execute("UPDATE account_tokens SET used_at = now() WHERE token_hash = %s", [token_hash(token)])
        return stored.user_id

    async def end(self, conn: Connection, user_id: UUID, purpose: Purpose) -> None:
        await conn.execute(
            "UPDATE account_tokens SET used_at = now() WHERE user_id = %s AND purpose = %s AND used_at IS NULL",
            [user_id, purpose],
        )
