"""When a failed call may be repeated, and after how long.

Only requests that are safe to repeat are retried: the idempotent methods, and any request that
carries an `Idempotency-Key` (the server deduplicates it, so a repeat cannot charge twice). The
delays are the platform's backoff schedule with "equal jitter": each delay is drawn from
[d/2, d], so replicas that failed together do not retry in lockstep, yet a retry never comes much
sooner than the schedule says.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
IDEMPOTENCY_KEY_HEADER = "idempotency-key"
# Answers that say "try again": the downstream or something in front of it is overloaded or down.
RETRYABLE_STATUSES = frozenset({502, 503, 504})


def may_retry(method: str, headers: Mapping[str, str]) -> bool:
    return method.upper() in IDEMPOTENT_METHODS or any(k.lower() == IDEMPOTENCY_KEY_HEADER for k in headers)


@dataclass(frozen=True)
class RetryPolicy:
    backoff_seconds: Sequence[float] = (1, 2, 4, 8)
    max_retries: int = 3
    random: Callable[[], float] = field(default=random.random, compare=False)  # [0, 1); injectable

    def delay(self, retry: int) -> float:
        """The pause before retry number `retry` (1-based); the schedule's last step repeats."""
        if not self.backoff_seconds:
            return 0.0
        base = float(self.backoff_seconds[min(retry, len(self.backoff_seconds)) - 1])
        return base / 2 + self.random() * base / 2
