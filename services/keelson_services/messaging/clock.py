"""Wall-clock time, injectable so that backoffs can be tested without waiting.

Due times of retried messages travel between replicas in headers, so they are wall-clock epoch
seconds, not a monotonic clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()
