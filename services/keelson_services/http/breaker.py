"""A circuit breaker per downstream, as the platform's resilience settings describe it.

- closed: calls go through; `failure_threshold` consecutive failures open it.
- open: calls fail fast with `CircuitOpenError` (503 with Retry-After) for `open_seconds`.
- half-open: after that, exactly one call goes through as a probe; its success closes the
  breaker, its failure opens it for another full period. Other calls fail fast meanwhile.

Time comes from an injected monotonic clock, so the tests step through a 30 s open period
without waiting. Not thread-safe: one breaker belongs to one event loop.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from keelson_services.http.errors import CircuitOpenError

MonotonicClock = Callable[[], float]


class BreakerState(enum.IntEnum):
    # The values are the `keelson_circuit_breaker_state` gauge's.
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        downstream: str,
        *,
        failure_threshold: int,
        open_seconds: float,
        clock: MonotonicClock = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.downstream = downstream
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after(self) -> float:
        """Seconds until a call may go through again (0 when one may go now)."""
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.open_seconds - self._clock())
        if self._state is BreakerState.HALF_OPEN and self._probe_in_flight:
            return 1.0  # the probe's verdict comes within one call timeout; ask again soon
        return 0.0

    def acquire(self) -> None:
        """Admit one call, or raise `CircuitOpenError`. Every admitted call must end in
        `record_success`, `record_failure` or `release`."""
        if self._state is BreakerState.OPEN:
            if self._clock() < self._opened_at + self.open_seconds:
                raise CircuitOpenError(self.downstream, self.retry_after())
            self._enter(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._probe_in_flight:
                raise CircuitOpenError(self.downstream, self.retry_after())
            self._probe_in_flight = True

    def record_success(self) -> None:
        if self._state is BreakerState.OPEN:
            return  # a late verdict of a call admitted before the breaker opened
        self._failures = 0
        self._probe_in_flight = False
        if self._state is not BreakerState.CLOSED:
            self._enter(BreakerState.CLOSED)

    def record_failure(self) -> None:
        if self._state is BreakerState.OPEN:
            return  # a late verdict: the open period runs from the failure that opened it
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._probe_in_flight = False
            self._opened_at = self._clock()
            self._enter(BreakerState.OPEN)

    def release(self) -> None:
        """An admitted call ended without a verdict (its caller went away): let another probe go."""
        self._probe_in_flight = False

    def _enter(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self.downstream, state)
