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

_COLUMNS = "id, email, name, password_hash, roles, active, created_at"


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    name: str
    password_hash: str
    roles: tuple[str, ...]
    active: bool
    created_at: datetime

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
        )

    def profile(self) -> dict[str, Any]:
        """The public view: everything but the password hash."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "roles": list(self.roles),
            "active": self.active,
            "created_at": self.created_at,
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

    async def create(self, *, email: str, name: str, password_hash: str) -> User:
        try:
            async with self.db.connection() as conn:
                cursor = await conn.execute(
                    f"INSERT INTO users (email, name, password_hash) VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
                    [email, name, password_hash],
                )
                user = User.of(_one(await cursor.fetchone()))
                if self.outbox is not None:
                    data = {"user_id": str(user.id), "email": user.email, "name": user.name}
                    await self.outbox.add(conn, "user.registered", data, key=str(user.id))
                return user
        except pg_errors.UniqueViolation:
            raise EmailTakenError() from None

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
        """Change the given fields (None: leave as is); None when there is no such user."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"""
                UPDATE users SET
                    name = coalesce(%s, name),
                    password_hash = coalesce(%s, password_hash),
                    roles = coalesce(%s, roles),
                    active = coalesce(%s, active),
                    updated_at = now()
                WHERE id = %s
                RETURNING {_COLUMNS}
                """,
                [name, password_hash, list(roles) if roles is not None else None, active, user_id],
            )
            row = await cursor.fetchone()
            if row is not None and active is False:
                # A deactivated account keeps no way back in but its still-valid access tokens.
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
                    [user_id],
                )
        return User.of(row) if row else None

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
