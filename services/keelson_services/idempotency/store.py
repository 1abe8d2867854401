"""Idempotency keys in the service's own database, the way the best payment APIs treat them:

- the first request with a key claims it and runs;
- a repeat with the same key and the same request replays the stored response, byte for byte,
  and runs nothing;
- the same key with a different request is refused (422): a key names one request, forever;
- a repeat while the first is still running is refused (409) and never runs a second time.

Claiming is one `INSERT ... ON CONFLICT DO NOTHING`, so of any number of concurrent requests
exactly one wins. A claim carries a lease: if its request crashes without completing or releasing
it, the key falls free when the lease ends and a retry may run (the side effect behind it must
itself be safe to repeat, e.g. a payment provider call that carries the same key).

A released claim (the request was refused, or a dependency gave no verdict) lets the same request
run again, and only that request: the key stays bound to its fingerprint, as a completed one
does. Keys are kept for `RETENTION` (24 h, as payment APIs keep theirs) and then purged by
`IdempotencyPurger`, every replica's background job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from keelson_services.db import Database, Migration, load_migrations
from keelson_services.errors import ApiError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
RETENTION = timedelta(hours=24)


def migrations() -> list[Migration]:
    """The store's table; a service using it runs these with its own migrations."""
    return load_migrations("keelson_services.idempotency", "idempotency")


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests "the same": method, path and the JSON body, compared by value
    (key order and whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def validate_key(key: str | None) -> str:
    """The key of a request that requires one, or a 400 saying what is wrong with it."""
    if key is None or not key.strip():
        raise ApiError(400, "idempotency_key_required", f"This request needs an {HEADER} header")
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", f"{HEADER} must be at most {MAX_KEY_LENGTH} printable characters"
        )
    return key


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class KeyReusedError(ApiError):
    def __init__(self) -> None:
        super().__init__(
            422,
            "idempotency_key_reused",
            f"This {HEADER} was already used with a different request",
        )


class RequestInFlightError(ApiError):
    def __init__(self) -> None:
        super().__init__(
            409,
            "request_in_progress",
            f"A request with this {HEADER} is still being processed; retry later",
            headers={"Retry-After": "1"},
        )


class IdempotencyStore:
    def __init__(self, db: Database, *, lease: timedelta = timedelta(seconds=60)) -> None:
        self.db = db
        self.lease = lease

    async def begin(self, scope: str, key: str, request_fingerprint: str) -> StoredResponse | None:
        """Claim `key` (None: the caller now runs the request), or the stored response to replay.
        Raises `KeyReusedError` (422) or `RequestInFlightError` (409)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                INSERT INTO idempotency_keys (scope, key, fingerprint, locked_until)
                VALUES (%s, %s, %s, now() + %s)
                ON CONFLICT (scope, key) DO NOTHING
                RETURNING key
                """,
                [scope, key, request_fingerprint, self.lease],
            )
            if await cursor.fetchone() is not None:
                return None
            cursor = await conn.execute(
                """
                SELECT fingerprint, status, locked_until < now() AS expired,
                       response_status, response_headers, response_body
                FROM idempotency_keys WHERE scope = %s AND key = %s FOR UPDATE
                """,
                [scope, key],
            )
            row = await cursor.fetchone()
            if row is None:  # released between our insert and select: the next try claims it
                raise RequestInFlightError()
            if row["fingerprint"] != request_fingerprint:
                raise KeyReusedError()
            if row["status"] == "completed":
                return StoredResponse(
                    row["response_status"], bytes(row["response_body"]), row["response_headers"] or {}
                )
            if row["status"] == "in_progress" and not row["expired"]:
                raise RequestInFlightError()
            # Released, or a crashed claim whose lease ended: the same request claims it again.
            await conn.execute(
                """
                UPDATE idempotency_keys SET status = 'in_progress', locked_until = now() + %s
                WHERE scope = %s AND key = %s
                """,
                [self.lease, scope, key],
            )
            return None

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                """
                UPDATE idempotency_keys
                SET status = 'completed', completed_at = now(),
                    response_status = %s, response_headers = %s, response_body = %s
                WHERE scope = %s AND key = %s
                """,
                [response.status, Jsonb(dict(response.headers)), response.body, scope, key],
            )

    async def release(self, scope: str, key: str) -> None:
        """Give up a claim (the request was refused, or a dependency gave no verdict), so that a
        retry of the same request with the same key runs; another request with it is still a 422."""
        async with self.db.connection() as conn:
            await conn.execute(
                """
                UPDATE idempotency_keys SET status = 'released', locked_until = now()
                WHERE scope = %s AND key = %s AND status = 'in_progress'
                """,
                [scope, key],
            )

    async def purge(self, older_than: timedelta = RETENTION) -> int:
        """Forget keys older than `older_than`: completed and released ones, and claims whose
        lease ended that long ago (their request crashed and was never retried)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                DELETE FROM idempotency_keys
                WHERE created_at < now() - %s AND (status <> 'in_progress' OR locked_until < now() - %s)
                """,
                [older_than, older_than],
            )
            return cursor.rowcount

    async def run(
        self,
        *,
        scope: str,
        key: str,
        request_fingerprint: str,
        handler: Callable[[], Awaitable[StoredResponse]],
    ) -> tuple[StoredResponse, bool]:
        """Run `handler` at most once per key: (its response, False), or (the stored response,
        True) on a replay. A handler that raises an `ApiError` refused the request before it
        changed anything, so the key is released for a corrected retry; any other failure may
        have come after a side effect, so the claim stands until its lease ends."""
        stored = await self.begin(scope, key, request_fingerprint)
        if stored is not None:
            return stored, True
        try:
            response = await handler()
        except ApiError:
            await self.release(scope, key)
            raise
        await self.complete(scope, key, response)
        return response, False
