"""The one module that talks to PostgreSQL: catalog reads and the few DDL statements Keelson runs.

Every statement is composed with `psycopg.sql` (identifiers quoted, literals escaped) and run in
autocommit mode, because CREATE DATABASE and DROP DATABASE cannot run inside a transaction.
Passwords never travel: roles get SCRAM verifiers (see `credentials`). Errors are mapped to
the reasons the platform's status reports; their messages carry no credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import psycopg
from prometheus_client import Counter
from psycopg import sql

from keelson.databases.admin import AdminConnection
from keelson.databases.credentials import Credentials, scram_verifier

POSTGRES_CONNECTIONS = Counter(
    "keelson_postgres_connections_total", "Connections opened to PostgreSQL servers (admin and login checks)."
)

CONNECT_TIMEOUT_SECONDS = 5
# The server ends any statement of ours that runs longer (a lock held by someone else, a slow
# disk): the pass fails with that message instead of waiting. A server that does not answer at
# all is the area's deadline's business (`controller.database_area`).
STATEMENT_TIMEOUT_SECONDS = 10
# Phrases of the server's FATAL messages that mean "these credentials are not accepted" rather
# than "the server is not there" (libpq reports both as an OperationalError without SQLSTATE).
_REJECTED = ("password authentication failed", "no pg_hba.conf entry", "does not exist", "not permitted to log in")


class ServerUnreachable(Exception):
    """No connection to the server (down, refused, timed out, starting up)."""


class AdminCredentialsRejected(Exception):
    """The server answered and refused the admin connection."""


class StatementFailed(Exception):
    """A catalog read or DDL statement failed (e.g. the admin lacks a privilege)."""


@dataclass(frozen=True)
class LiveRole:
    name: str
    comment: str | None


@dataclass(frozen=True)
class LiveDatabase:
    name: str
    comment: str | None
    owner: str
    public_can_connect: bool


def _connect_error(exc: psycopg.OperationalError, where: str) -> Exception:
    text = str(exc)
    detail = text.split("failed:", 1)[-1].strip().splitlines()[0] if text else type(exc).__name__
    if "FATAL" in text and any(p in text for p in _REJECTED):
        return AdminCredentialsRejected(f"{where}: {detail}")
    return ServerUnreachable(f"{where}: {detail}")


class Session(Protocol):
    """What the area does on a server; `FakeSession` in the unit tests implements it too."""

    ddl: int  # statements that changed something, for tests and logs

    async def roles(self, names: Iterable[str]) -> dict[str, LiveRole]: ...
    async def databases(self, names: Iterable[str]) -> dict[str, LiveDatabase]: ...
    async def create_role(self, name: str, password: str, comment: str) -> None: ...
    async def set_password(self, name: str, password: str) -> None: ...
    async def create_database(self, name: str, owner: str, comment: str) -> None: ...
    async def set_owner(self, name: str, owner: str) -> None: ...
    async def revoke_public(self, name: str) -> None: ...
    async def drop(self, name: str) -> None: ...
    async def can_login(self, creds: Credentials) -> bool | None: ...


class PostgresSession:
    def __init__(self, conn: psycopg.AsyncConnection[tuple[object, ...]], admin: AdminConnection) -> None:
        self._conn = conn
        self._admin = admin
        self.ddl = 0

    async def _run(self, statement: sql.Composed) -> None:
        try:
            await self._conn.execute(statement)
        except psycopg.Error as exc:
            raise StatementFailed(f"{exc.sqlstate or ''} {exc}".strip()) from exc
        self.ddl += 1

    async def _query(self, query: str, names: list[str]) -> list[tuple[object, ...]]:
        try:
            cur = await self._conn.execute(query, (names,))
            return await cur.fetchall()
        except psycopg.OperationalError as exc:
            raise ServerUnreachable(f"{self._admin.endpoint}: {exc}") from exc
        except psycopg.Error as exc:
            raise StatementFailed(str(exc)) from exc

    async def roles(self, names: Iterable[str]) -> dict[str, LiveRole]:
        rows = await self._query(
            "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = ANY(%s)",
            sorted(names),
        )
        return {str(r[0]): LiveRole(str(r[0]), r[1] if r[1] is None else str(r[1])) for r in rows}

    async def databases(self, names: Iterable[str]) -> dict[str, LiveDatabase]:
        # datacl NULL means the defaults, under which PUBLIC may connect.
        rows = await self._query(
            "SELECT datname, shobj_description(oid, 'pg_database'), pg_get_userbyid(datdba), "
            "datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(datacl) a "
            "WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') "
            "FROM pg_database WHERE datname = ANY(%s)",
            sorted(names),
        )
        return {
            str(r[0]): LiveDatabase(str(r[0]), r[1] if r[1] is None else str(r[1]), str(r[2]), bool(r[3])) for r in rows
        }

    async def create_role(self, name: str, password: str, comment: str) -> None:
        await self._run(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(scram_verifier(password))
            )
        )
        await self._run(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))

    async def set_password(self, name: str, password: str) -> None:
        await self._run(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(scram_verifier(password)))
        )

    async def create_database(self, name: str, owner: str, comment: str) -> None:
        await self._run(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        await self._run(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
        await self.revoke_public(name)

    async def set_owner(self, name: str, owner: str) -> None:
        await self._run(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner)))

    async def revoke_public(self, name: str) -> None:
        # Only the owner (and superusers) may connect: no other service's role gets in.
        await self._run(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))

    async def drop(self, name: str) -> None:
        """Drop the database and then its role. FORCE ends the service's remaining connections:
        dropping was asked for (deletionPolicy Delete), and its pods are going away."""
        await self._run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        await self._run(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    async def can_login(self, creds: Credentials) -> bool | None:
        """Whether the role logs in with this password: True, False (rejected), None (can't tell)."""
        POSTGRES_CONNECTIONS.inc()
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._admin.conninfo,
                user=creds.user,
                password=creds.password,
                dbname=creds.dbname,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
            )
        except psycopg.OperationalError as exc:
            return False if "password authentication failed" in str(exc) else None
        await conn.close()
        return True


@asynccontextmanager
async def connect(admin: AdminConnection) -> AsyncIterator[Session]:
    POSTGRES_CONNECTIONS.inc()
    try:
        conn = await psycopg.AsyncConnection.connect(
            admin.conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}",
        )
    except psycopg.OperationalError as exc:
        raise _connect_error(exc, admin.endpoint) from exc
    try:
        yield PostgresSession(conn, admin)
    finally:
        await conn.close()
