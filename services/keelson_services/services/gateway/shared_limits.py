"""Rate limits that hold for the platform as a whole: the counters live in the gateway's own
PostgreSQL database, which every replica shares.

Why PostgreSQL and not a Redis: the platform already runs a database per service, and its
credentials, NetworkPolicy egress, backups and monitoring come with it; a Redis would be one more
component to run, secure and watch for one table. The cost is one small upsert per request.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one number): a
key's row holds its theoretical arrival time `tat`. A request at `now` is allowed when
`max(tat, now) + 1/rate - now <= burst/rate`, and then moves `tat` on by `1/rate`. One
`INSERT ... ON CONFLICT DO UPDATE` decides and records it, so two replicas charging the same key
at once are serialised by the row's lock and never both take the last request. Time is the
database's (`now()`), so the replicas' clocks need not agree.

When the database does not answer within `timeout_seconds`, the replica falls back to its own
in-memory buckets (`MemoryLimiter`): the limit then holds per replica, as it did before, rather
than failing every request or none.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math

import psycopg

from keelson_services.db import Database
from keelson_services.services.gateway.ratelimit import Decision, MemoryLimiter, Policy

log = logging.getLogger("keelson.gateway.limits")

PURGE_INTERVAL_SECONDS = 60.0

_CHARGE = """
INSERT INTO rate_limits AS r (key_hash, tat, allowed)
VALUES (%(key)s, extract(epoch FROM now()) + %(interval)s, true)
ON CONFLICT (key_hash) DO UPDATE SET
    allowed = GREATEST(r.tat, extract(epoch FROM now())) + %(interval)s - extract(epoch FROM now()) <= %(window)s,
    tat = CASE
        WHEN GREATEST(r.tat, extract(epoch FROM now())) + %(interval)s - extract(epoch FROM now()) <= %(window)s
        THEN GREATEST(r.tat, extract(epoch FROM now())) + %(interval)s
        ELSE r.tat
    END
RETURNING tat, allowed, extract(epoch FROM now()) AS now
"""
_PEEK = "SELECT tat, extract(epoch FROM now()) AS now FROM rate_limits WHERE key_hash = %(key)s"
_PURGE = "DELETE FROM rate_limits WHERE tat < extract(epoch FROM now())"


def key_hash(policy: Policy, key: str) -> bytes:
    return hashlib.sha256(f"{policy.name}:{key}".encode()).digest()


def decide(policy: Policy, *, tat: float, now: float, allowed: bool) -> Decision:
    """The decision a counter at `tat` stands for (after the charge, when there was one)."""
    interval, window = 1 / policy.rate, policy.burst / policy.rate
    if allowed:
        return Decision(True, max(0, math.floor((window - (tat - now)) / interval + 1e-9)), 0.0)
    return Decision(False, 0, max(0.0, tat + interval - now - window))


class SharedLimiter:
    def __init__(self, db: Database, *, fallback: MemoryLimiter, timeout_seconds: float = 1.0) -> None:
        self.db = db
        self.fallback = fallback
        self.timeout_seconds = timeout_seconds
        self._degraded = False

    async def charge(self, policy: Policy, key: str) -> Decision:
        params = {"key": key_hash(policy, key), "interval": 1 / policy.rate, "window": policy.burst / policy.rate}
        try:
            async with asyncio.timeout(self.timeout_seconds), self.db.connection() as conn:
                row = await (await conn.execute(_CHARGE, params)).fetchone()
        except (psycopg.Error, TimeoutError) as err:
            self._fall_back(err)
            return await self.fallback.charge(policy, key)
        self._recovered()
        assert row is not None
        return decide(policy, tat=row["tat"], now=float(row["now"]), allowed=row["allowed"])

    async def peek(self, policy: Policy, key: str) -> Decision:
        try:
            async with asyncio.timeout(self.timeout_seconds), self.db.connection() as conn:
                row = await (await conn.execute(_PEEK, {"key": key_hash(policy, key)})).fetchone()
        except (psycopg.Error, TimeoutError) as err:
            self._fall_back(err)
            return await self.fallback.peek(policy, key)
        self._recovered()
        if row is None:
            return Decision(True, int(policy.burst) - 1, 0.0)
        now = float(row["now"])
        interval, window = 1 / policy.rate, policy.burst / policy.rate
        allowed = max(row["tat"], now) + interval - now <= window
        return decide(policy, tat=max(row["tat"], now) + (interval if allowed else 0.0), now=now, allowed=allowed)

    async def purge(self) -> None:
        """Drop the counters whose budget is full again (equivalent to no row at all)."""
        async with self.db.connection() as conn:
            await conn.execute(_PURGE)

    def _fall_back(self, err: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning(
                "rate-limit store unreachable (%s): limits hold per replica until it answers", type(err).__name__
            )

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("rate-limit store reachable again: limits hold platform-wide")
