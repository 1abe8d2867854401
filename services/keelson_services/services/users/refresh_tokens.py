"""Refresh tokens: opaque random strings, stored only as SHA-256 hashes, single use.

Using one revokes it and returns a successor in the same family. Presenting an already used
token means two parties hold it (a thief, or a client that kept a copy), so the whole family is
revoked and both must log in again: the OAuth 2.0 Security BCP's refresh token rotation.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from uuid import UUID

from keelson_services.db import Connection, Database
from keelson_services.errors import ApiError

PREFIX = "krt_"


class InvalidRefreshTokenError(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "invalid_refresh_token", "The refresh token is not valid; log in again")


def token_hash(token: str) -> bytes:
    """What is stored of an opaque token: its SHA-256 (a 256-bit random token needs no salt or
    slow hash; nobody can guess one to test against the table)."""
    return hashlib.sha256(token.encode()).digest()


class RefreshTokens:
    def __init__(self, db: Database, *, ttl: timedelta) -> None:
        self.db = db
        self.ttl = ttl

    async def issue(self, user_id: UUID, *, conn: Connection | None = None, family_id: UUID | None = None) -> str:
        if conn is None:
            async with self.db.connection() as own:
                return await self.issue(user_id, conn=own, family_id=family_id)
        token = PREFIX + secrets.token_urlsafe(32)
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at) VALUES (%s, %s, %s, now() + %s)",
            [token_hash(token), user_id, family_id or uuid.uuid4(), self.ttl],
        )
        return token

    async def exchange(self, token: str) -> tuple[UUID, str]:
        """The user id and a new refresh token for a valid one, which is used up."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT t.user_id, t.family_id, t.revoked_at IS NOT NULL AS used, t.expires_at < now() AS expired,
                       u.active
                FROM refresh_tokens t JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = %s FOR UPDATE OF t
                """,
                [token_hash(token)],
            )
            row = await cursor.fetchone()
            if row is None or row["expired"] or not row["active"]:
                raise InvalidRefreshTokenError()
            if row["used"]:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %s AND revoked_at IS NULL",
                    [row["family_id"]],
                )
                await conn.commit()  # the revocation must stand although this request fails
                raise InvalidRefreshTokenError()
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash = %s", [token_hash(token)]
            )
            successor = await self.issue(row["user_id"], conn=conn, family_id=row["family_id"])
            return row["user_id"], successor

    async def revoke_family(self, token: str) -> None:
        """Log out: the token and every token of its family (the session) are revoked. A token that
        is unknown, expired or already revoked changes nothing: logging out twice is no error."""
        async with self.db.connection() as conn:
            await conn.execute(
                """
                UPDATE refresh_tokens SET revoked_at = now()
                WHERE revoked_at IS NULL
                  AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = %s)
                """,
                [token_hash(token)],
            )

    async def revoke_all(self, user_id: UUID) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL", [user_id]
            )
