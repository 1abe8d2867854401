"""Deadline propagation: a call chain shares its caller's time budget instead of nesting timeouts.

Without it, the gateway waits 5 s for orders while orders waits 5 s for payments and retries it
after 1 and 2 s: orders' honest answer ("payments is unavailable") arrives after the gateway has
given up and counted a timeout against orders, a healthy service. With it, every call sends the
time its caller will wait (`X-Keelson-Timeout-Ms`, relative, so clocks need not agree, as gRPC's
`grpc-timeout`); the callee makes that its deadline, and its own calls and retries fit inside it
less a small margin, so the answer of the deepest failing hop gets back before anyone above
times out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

TIMEOUT_HEADER = "x-keelson-timeout-ms"
# Left for an answer to travel back up one hop, so a callee's error beats its caller's timeout.
MARGIN_SECONDS = 0.1

_deadline: ContextVar[float | None] = ContextVar("keelson_deadline", default=None)


def current() -> float | None:
    """The current request's deadline on the monotonic clock, or None when it has none."""
    return _deadline.get()


@contextmanager
def activated(deadline: float | None) -> Iterator[None]:
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def from_headers(headers: Mapping[str, str], now: float) -> float | None:
    """The deadline a caller's `X-Keelson-Timeout-Ms` sets (lowercase header names); None when
    the header is absent or not a whole number of milliseconds."""
    value = headers.get(TIMEOUT_HEADER, "").strip()
    if not value.isdigit():
        return None
    return now + int(value) / 1000


def at_edge(timeout_seconds: float, now: float) -> float:
    """The deadline of a request as its client sees it, set where it enters the platform (the
    gateway): the design's request timeout for the whole request, retries included, rather than
    per attempt (which let a GET take 20-27 s). Two margins more, so that its first call still gets
    the full timeout (`budget` keeps one margin back): a call cut short of it gives the circuit
    breaker no verdict, and the gateway's breakers must still see a downstream's timeouts."""
    return now + timeout_seconds + 2 * MARGIN_SECONDS


def budget(timeout_seconds: float, now: float) -> float:
    """How long one call may take: the platform's timeout, or less when the current request's
    deadline (less the margin) comes sooner. Zero or less: no time is left to make the call."""
    deadline = current()
    if deadline is None:
        return timeout_seconds
    return min(timeout_seconds, deadline - now - MARGIN_SECONDS)


def header(budget_seconds: float) -> dict[str, str]:
    return {TIMEOUT_HEADER: str(max(1, int(budget_seconds * 1000)))}
