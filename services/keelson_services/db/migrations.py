"""Forward-only SQL migrations, run at start-up by every replica, safely and idempotently.

A migration is a file `NNNN_description.sql` in a component's migrations directory (a service's
own, or a library part's such as idempotency). `schema_migrations` records what ran, per
component and version, with a checksum: an applied migration that was edited afterwards stops
the service instead of leaving the schema to guesswork; fix forward with a new migration.

Replicas starting together serialise on a session-level advisory lock, so exactly one applies
each pending migration and the others then find nothing to do. Each migration and its record
commit in one transaction: a crash leaves it either fully applied or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from keelson_services.db.pool import Database

log = logging.getLogger("keelson.db.migrations")

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# One lock for all services: each service has a database of its own, so it only ever contends
# with the replicas of the same service. Derived from a name so that it is stable and explained.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"keelson.schema_migrations").digest()[:8], "big", signed=True)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(package: str, component: str, directory: str = "migrations") -> list[Migration]:
    """The migrations in `<package>/<directory>/`, in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).joinpath(directory).iterdir():
        match = _FILENAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise MigrationError(f"{entry.name}: migration files are named NNNN_description.sql")
            continue
        found.append(Migration(component, int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{component}: two migrations share a version number")
    return found


async def migrate(db: Database, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply the pending migrations; returns those applied by this call."""
    applied_now: list[Migration] = []
    conn = await db.direct(autocommit=True)
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            await conn.execute(_CREATE_TABLE)
            cursor = await conn.execute("SELECT component, version, checksum FROM schema_migrations")
            done = {(r["component"], r["version"]): r["checksum"] for r in await cursor.fetchall()}
            for migration in migrations:
                recorded = done.get((migration.component, migration.version))
                if recorded is not None:
                    if recorded != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.component}/{migration.version:04d}_{migration.name} was changed "
                            "after it was applied; migrations are forward-only: add a new one instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())  # bytes: run as written, several statements
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, name, checksum) VALUES (%s, %s, %s, %s)",
                        [migration.component, migration.version, migration.name, migration.checksum],
                    )
                log.info(
                    "applied migration %s/%04d_%s",
                    migration.component,
                    migration.version,
                    migration.name,
                    extra={"component": migration.component, "version": migration.version},
                )
                applied_now.append(migration)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    finally:
        await conn.close()
    return applied_now
