"""A service's connection pool to its own database (`KEELSON_DATABASE_URI`, a libpq URI).

psycopg 3 with psycopg_pool: typed, async, and libpq parses the URI exactly as `psql` would.
Connections are checked before they are handed out, so a database restart costs a reconnect,
not a failed request. Rows come back as dicts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("keelson.db")

Connection = AsyncConnection[DictRow]


class Database:
    def __init__(self, uri: str, *, min_size: int = 1, max_size: int = 10, application_name: str = "keelson") -> None:
        self.uri = uri
        self.application_name = application_name
        self.pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            uri,
            min_size=min_size,
            max_size=max_size,
            open=False,
            connection_class=AsyncConnection[DictRow],
            kwargs={"row_factory": dict_row, "application_name": application_name},
            check=AsyncConnectionPool.check_connection,
            name=application_name,
        )

    async def open(self, *, timeout_seconds: float = 60.0) -> None:
        """Open the pool, waiting up to `timeout_seconds` for the server (it may start after us)."""
        await self.pool.open(wait=True, timeout=timeout_seconds)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; the block is one transaction (committed unless it raises)."""
        async with self.pool.connection() as conn:
            yield conn

    async def direct(self, *, autocommit: bool = True) -> Connection:
        """A connection of its own, outside the pool (migrations hold a session lock on one)."""
        return await AsyncConnection[DictRow].connect(
            self.uri, autocommit=autocommit, row_factory=dict_row, application_name=self.application_name
        )

    async def ping(self) -> None:
        """Raise unless the database answers: the readiness check."""
        async with self.connection() as conn:
            await conn.execute("SELECT 1")
