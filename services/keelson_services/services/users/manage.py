"""Administrative commands run against the users database, for what no API can bootstrap:
the first admin. `python -m keelson_services.run users grant-admin EMAIL` (in a cluster, through
`kubectl exec` into a users pod, which has the database credentials)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from keelson_services.contracts.users import ROLES
from keelson_services.db import Database
from keelson_services.settings import Settings

USAGE = "usage: users grant-admin EMAIL | users revoke-admin EMAIL"


async def set_role(db: Database, email: str, role: str, *, granted: bool) -> bool:
    """Grant or revoke `role` for the account with `email`; False when there is no such account."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    async with db.connection() as conn:
        cursor = await conn.execute(
            """
            UPDATE users SET roles = CASE WHEN %(granted)s
                    THEN (SELECT array_agg(DISTINCT r ORDER BY r) FROM unnest(roles || ARRAY[%(role)s]) AS r)
                    ELSE coalesce(array_remove(roles, %(role)s), ARRAY['customer'])
                END,
                updated_at = now()
            WHERE lower(email) = lower(%(email)s)
            RETURNING id
            """,
            {"granted": granted, "role": role, "email": email},
        )
        return await cursor.fetchone() is not None


async def _run(command: str, email: str) -> int:
    db = Database(Settings.from_env().require_database(), min_size=1, max_size=1, application_name="users-manage")
    await db.open(timeout_seconds=30)
    try:
        found = await set_role(db, email, "admin", granted=command == "grant-admin")
    finally:
        await db.close()
    if not found:
        print(f"no account with email {email}", file=sys.stderr)
        return 1
    print(f"{command}: {email}")
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("grant-admin", "revoke-admin"):
        print(USAGE, file=sys.stderr)
        return 2
    return asyncio.run(_run(argv[0], argv[1]))
