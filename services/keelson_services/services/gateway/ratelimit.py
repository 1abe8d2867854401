"""Rate limits: a `Policy` (a burst, then a steady rate) charged per key by a `Limiter`.

Two limiters: `SharedLimiter` (`shared_limits.py`) keeps the counts in the gateway's PostgreSQL
database, so that the limit holds for the platform as a whole whatever the number of replicas;
`MemoryLimiter` keeps them in the replica, for a gateway without a database and as the shared
one's fallback while the database is unreachable.

In memory, per-key token buckets: each key may burst up to `burst` requests, then `rate` per
second. Time comes from an injected monotonic clock, so tests drain and refill buckets without
waiting. Buckets are least recently used evicted first (an evicted key merely starts again with
a full bucket).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from keelson_services.http.breaker import MonotonicClock


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until the request would be allowed (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True)
class Policy:
    """`burst` requests at once, then `rate` per second. `name` keeps the keys of two policies
    apart in a shared store."""

    name: str
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate limit {self.name}: rate must be positive and burst at least 1")


class Limiter(Protocol):
    async def charge(self, policy: Policy, key: str) -> Decision:
        """Take one request from `key`'s budget under `policy`, if there is one left."""
        ...

    async def peek(self, policy: Policy, key: str) -> Decision:
        """Whether `charge` would allow a request now, without taking it."""
        ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    def __init__(
        self, *, rate: float, burst: float, clock: MonotonicClock = time.monotonic, max_clients: int = 100_000
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def peek(self, client: str, cost: float = 1.0) -> Decision:
        bucket = self._buckets.get(client)
        tokens = (
            self.burst
            if bucket is None
            else min(self.burst, bucket.tokens + (self._clock() - bucket.updated) * self.rate)
        )
        if tokens >= cost:
            return Decision(True, int(tokens - cost), 0.0)
        return Decision(False, 0, (cost - tokens) / self.rate)

    def take(self, client: str, cost: float = 1.0) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[client] = bucket
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return Decision(True, int(bucket.tokens), 0.0)
        return Decision(False, 0, (cost - bucket.tokens) / self.rate)


class MemoryLimiter:
    """A `Limiter` of token buckets in this replica: one `TokenBucketLimiter` per policy."""

    def __init__(self, *, clock: MonotonicClock = time.monotonic, max_clients: int = 100_000) -> None:
        self._clock = clock
        self.max_clients = max_clients
        self._by_policy: dict[Policy, TokenBucketLimiter] = {}

    def _buckets(self, policy: Policy) -> TokenBucketLimiter:
        found = self._by_policy.get(policy)
        if found is None:
            found = TokenBucketLimiter(
                rate=policy.rate, burst=policy.burst, clock=self._clock, max_clients=self.max_clients
            )
            self._by_policy[policy] = found
        return found

    async def charge(self, policy: Policy, key: str) -> Decision:
        return self._buckets(policy).take(key)

    async def peek(self, policy: Policy, key: str) -> Decision:
        return self._buckets(policy).peek(key)
