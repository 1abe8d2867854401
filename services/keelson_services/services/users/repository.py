"""The users table. Every query binds its values as parameters: what a user types is stored and
compared verbatim and never becomes SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import errors as pg_errors

from keelson_services.db import Connection, Database
from keelson_services.errors import ApiError
from keelson_services.events import Outbox

_COLUMNS = "id, email, name, password_hash, roles, active, created_at, email_verified_at, token_version, erased_at"
# What an erased account's email becomes: unique like any email (the column's index), an address
# nobody has (RFC 2606's .invalid), and no longer the person's, so they may register again.
ERASED_EMAIL = "erased-{id}@erased.invalid"


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    name: str
    password_hash: str
    roles: tuple[str, ...]
    active: bool
    created_at: datetime
    email_verified: bool = True
    token_version: int = 0
    erased: bool = False

    @classmethod
    def of(cls, row: dict[str, Any]) -> User:
        return cls(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            password_hash=row["password_hash"],
            roles=tuple(row["roles"]),
            active=row["active"],
            created_at=row["created_at"],
            email_verified=row["email_verified_at"] is not None,
            token_version=row["token_version"],
            erased=row["erased_at"] is not None,
        )

    def profile(self) -> dict[str, Any]:
        """The public view: everything but the password hash."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "roles": list(self.roles),
            "active": self.active,
            "email_verified": self.email_verified,
            "created_at": self.created_at,
        }

    def state(self) -> dict[str, Any]:
        """What the gateway checks a token against (`contracts.users.AccountState`)."""
        return {
            "id": self.id,
            "active": self.active and not self.erased,
            "roles": list(self.roles),
            "email_verified": self.email_verified,
            "token_version": self.token_version,
        }


class EmailTakenError(ApiError):
    def __init__(self) -> None:
        super().__init__(409, "email_taken", "An account with this email already exists")


class UserRepository:
    def __init__(self, db: Database, *, outbox: Outbox | None = None) -> None:
        """`outbox`: where `user.registered` is written, in the registration's transaction (None:
        the platform declares no such event)."""
        self.db = db
        self.outbox = outbox

    async def create(self, conn: Connection, *, email: str, name: str, password_hash: str, verified: bool) -> User:
        """A new account in `conn`'s transaction, with `user.registered` when the platform declares it."""
        try:
            cursor = await conn.execute(
                f"""
                INSERT INTO users (email, name, password_hash, email_verified_at)
                VALUES (%s, %s, %s, CASE WHEN %s THEN now() END) RETURNING {_COLUMNS}
                """,
                [email, name, password_hash, verified],
            )
        except pg_errors.UniqueViolation:
            raise EmailTakenError() from None
        user = User.of(_one(await cursor.fetchone()))
        if self.outbox is not None and self.outbox.declares("user.registered"):
            data = {"user_id": str(user.id), "email": user.email, "name": user.name}
            await self.outbox.add(conn, "user.registered", data, key=str(user.id))
        return user

    async def by_email(self, email: str) -> User | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower(%s)", [email])
            row = await cursor.fetchone()
        return User.of(row) if row else None

    async def by_id(self, user_id: UUID, conn: Connection | None = None) -> User | None:
        if conn is None:
            async with self.db.connection() as own:
                return await self.by_id(user_id, own)
        cursor = await conn.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", [user_id])
        row = await cursor.fetchone()
        return User.of(row) if row else None

    async def update(
        self,
        user_id: UUID,
        *,
        name: str | None = None,
        password_hash: str | None = None,
        roles: Sequence[str] | None = None,
        active: bool | None = None,
    ) -> User | None:
        """Change the given fields (None: leave as is); None when there is no such user (an erased
        account is none: it cannot be reactivated or given roles)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"""
                UPDATE users SET
                    name = coalesce(%s, name),
                    password_hash = coalesce(%s, password_hash),
                    roles = coalesce(%s, roles),
                    active = coalesce(%s, active),
                    updated_at = now()
                WHERE id = %s AND erased_at IS NULL
                RETURNING {_COLUMNS}
                """,
                [name, password_hash, list(roles) if roles is not None else None, active, user_id],
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            if active is False:
                # A deactivated account keeps no way back in: its sessions end, and its access
                # tokens too (a later reactivation does not revive them).
                await self.end_sessions(conn, user_id)
                return await self.by_id(user_id, conn)
        return User.of(row)

    async def end_sessions(self, conn: Connection, user_id: UUID) -> None:
        """Revoke every refresh token of the account and raise its token version, which the gateway
        holds every access token against (`ver`): each session ends within its check interval."""
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL", [user_id]
        )
        await conn.execute("UPDATE users SET token_version = token_version + 1 WHERE id = %s", [user_id])

    async def mark_verified(self, conn: Connection, user_id: UUID) -> None:
        await conn.execute(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = %s",
            [user_id],
        )

    async def set_password(self, conn: Connection, user_id: UUID, password_hash: str) -> None:
        await conn.execute(
            "UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s", [password_hash, user_id]
        )

    async def erase(self, conn: Connection, user_id: UUID) -> bool:
        """Tombstone the account in `conn`'s transaction: its personal data (email, name, password
        hash) goes, its id stays (orders and payments refer to it), every session ends, its
        tokens are deleted, and `user.deleted` is written. False when there is no such account;
        erasing an erased one again changes nothing and announces nothing."""
        cursor = await conn.execute(
            """
            UPDATE users SET email = replace(%s, '{id}', id::text), name = '', password_hash = '', active = false,
                erased_at = now(), updated_at = now()
            WHERE id = %s AND erased_at IS NULL
            RETURNING id
            """,
            [ERASED_EMAIL, user_id],
        )
        if await cursor.fetchone() is None:
            return await self.by_id(user_id, conn) is not None
        await self.end_sessions(conn, user_id)
        await conn.execute("DELETE FROM refresh_tokens WHERE user_id = %s", [user_id])
        await conn.execute("DELETE FROM account_tokens WHERE user_id = %s", [user_id])
        if self.outbox is not None:
            # Published events keep their data for the outbox's retention: those of this account
            # (user.registered names the email and name) go now.
            await conn.execute("DELETE FROM outbox WHERE key = %s AND published_at IS NOT NULL", [str(user_id)])
            if self.outbox.declares("user.deleted"):
                await self.outbox.add(conn, "user.deleted", {"user_id": str(user_id)}, key=str(user_id))
        return True

    async def page(self, *, limit: int, offset: int) -> tuple[list[User], int]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM users ORDER BY created_at, id LIMIT %s OFFSET %s", [limit, offset]
            )
            users = [User.of(r) for r in await cursor.fetchall()]
            cursor = await conn.execute("SELECT count(*) AS n FROM users")
            total = _one(await cursor.fetchone())["n"]
        return users, int(total)


def _one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row
