"""Per-client token buckets: each client may burst up to `burst` requests, then `rate` per
second. Time comes from an injected monotonic clock, so tests drain and refill buckets without
waiting. Buckets live in memory, least recently used evicted first (an evicted client merely
starts again with a full bucket)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from keelson_services.http.breaker import MonotonicClock


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until the request would be allowed (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


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
