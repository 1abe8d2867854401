"""The gateway's cache of the users service's public keys (its JWKS).

Keys are fetched once and reused for `ttl_seconds`; after that they are refreshed in the
background while the known keys go on serving (stale-while-revalidate), so a slow or down users
service never stalls a request whose token verifies with a cached key. A token signed with a key
the cache does not know (the users service rotated its key) waits for an immediate refresh, so a
new key is trusted from its first token on; those refreshes, and background ones after a
failure, are spaced by `refresh_cooldown_seconds`, so a stream of forged key ids cannot turn the
gateway into a load generator against users. When the users service cannot be reached, the keys
already known keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from keelson_services.auth.config import ALGORITHM
from keelson_services.http.breaker import MonotonicClock

log = logging.getLogger("keelson.auth.jwks")

FetchJwks = Callable[[], Awaitable[Mapping[str, Any]]]


def parse_jwks(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The usable signing keys of a JWKS document by key id; others are skipped, not fatal."""
    keys: dict[str, PyJWK] = {}
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[entry["kid"]] = PyJWK(entry, algorithm=ALGORITHM)
        except PyJWKError as err:
            log.warning("skipping unusable JWKS key %s: %s", entry["kid"], err)
    return keys


class JwksCache:
    def __init__(
        self,
        fetch: FetchJwks,
        *,
        ttl_seconds: float = 300.0,
        refresh_cooldown_seconds: float = 1.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl_seconds = ttl_seconds
        self.refresh_cooldown_seconds = refresh_cooldown_seconds
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._forced_at: float | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._background_failed_at: float | None = None

    async def key(self, kid: str) -> PyJWK | None:
        """The key with id `kid`, or None when the users service does not publish it."""
        now = self._clock()
        if self._fetched_at is None:
            await self._refresh(None, keep_on_failure=False)  # nothing to serve meanwhile
        elif now - self._fetched_at >= self.ttl_seconds:
            self._refresh_in_background(now)
        found = self._keys.get(kid)
        if found is not None:
            return found
        if self._forced_at is not None and now - self._forced_at < self.refresh_cooldown_seconds:
            return None
        self._forced_at = now
        await self._refresh(self._fetched_at, keep_on_failure=False)
        return self._keys.get(kid)

    def _refresh_in_background(self, now: float) -> None:
        if self._background is not None and not self._background.done():
            return
        failed = self._background_failed_at
        if failed is not None and now - failed < self.refresh_cooldown_seconds:
            return
        self._background = asyncio.create_task(self._revalidate(self._fetched_at), name="jwks-refresh")

    async def _revalidate(self, seen: float | None) -> None:
        before = self._fetched_at
        try:
            await self._refresh(seen, keep_on_failure=True)
        except Exception:
            log.warning("JWKS refresh failed", exc_info=True)
        if self._fetched_at == before:  # failed (or kept the old keys): wait before trying again
            self._background_failed_at = self._clock()

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background

    async def _refresh(self, seen: float | None, *, keep_on_failure: bool) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed while this one waited
            try:
                document = await self._fetch()
            except Exception:
                if keep_on_failure and self._keys:
                    log.warning("JWKS refresh failed; keeping %d known keys", len(self._keys), exc_info=True)
                    return
                raise
            self._keys = parse_jwks(document)
            self._fetched_at = self._clock()
