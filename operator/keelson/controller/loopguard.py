"""The write-loop guard: an operator that keeps re-applying one object must notice and stop.

The drift check compares what we render with what the API server stores, and a property test
holds it to the real server (e2e/test_drift_roundtrip.py). Still, a future renderer bug, or
someone else's mutating admission webhook or policy rewriting a field we own, makes every pass
see drift, and a level-based operator would then patch that object as fast as its events come
back: the worst failure this kind of software can have.

So the reconciler counts its writes per object. More than `max_writes` writes of one object
within `window` seconds, with the platform's generation unchanged, trips the guard: the object
is not written again until the backoff has passed (doubling on every trip, up to `max_backoff`)
or the platform's generation changes (its owner changed something; maybe the fix). The reconciler
reports it (Ready=False, reason WriteLoop, the fields that keep differing), posts one Event, and
counts it in `keelson_write_loops_total`. Pure bookkeeping, no I/O: the clock is passed in.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)


def _setting(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Trip:
    """A loop the guard stopped: which fields kept differing, and until when it holds off."""

    generation: int
    fields: list[str]
    until: float
    backoff: float
    retrying: bool = False  # the backoff is over and one write was let through
    reported: bool = False  # its Event is posted once


@dataclass
class _History:
    generation: int
    writes: deque[float] = field(default_factory=deque)


@dataclass
class LoopGuard:
    max_writes: int = int(_setting("KEELSON_LOOP_MAX_WRITES", 5))
    window: float = _setting("KEELSON_LOOP_WINDOW_SECONDS", 600)
    first_backoff: float = _setting("KEELSON_LOOP_BACKOFF_SECONDS", 300)
    max_backoff: float = 3600
    _history: dict[ObjectKey, _History] = field(default_factory=dict)
    _trips: dict[ObjectKey, Trip] = field(default_factory=dict)

    def check(self, key: ObjectKey, generation: int, now: float, fields: list[str]) -> Trip | None:
        """Before writing `key`, which differs from the live object in `fields`: the trip that
        holds the write back, if any. A new generation of the platform lifts a trip."""
        trip = self._trips.get(key)
        if trip is not None and trip.generation != generation:
            del self._trips[key]
            trip = None
        if trip is not None:
            if now < trip.until:
                return trip
            if not trip.retrying:
                trip.retrying = True  # one more write after the backoff: maybe the cause is gone
                return None
            # That write changed nothing: the loop goes on; hold off twice as long.
            trip.backoff = min(trip.backoff * 2, self.max_backoff)
            trip.until, trip.retrying, trip.fields = now + trip.backoff, False, fields
            return trip
        history = self._history.get(key)
        if history is None or history.generation != generation:
            return None
        while history.writes and history.writes[0] <= now - self.window:
            history.writes.popleft()
        if len(history.writes) < self.max_writes:
            return None
        trip = self._trips[key] = Trip(generation, fields, now + self.first_backoff, self.first_backoff)
        return trip

    def record(self, key: ObjectKey, generation: int, now: float) -> None:
        """A write of `key` was made."""
        history = self._history.get(key)
        if history is None or history.generation != generation:
            history = self._history[key] = _History(generation)
        history.writes.append(now)

    def settled(self, key: ObjectKey) -> None:
        """`key` needs no write: whatever loop there was is over."""
        self._trips.pop(key, None)

    def active(self, keys: set[ObjectKey]) -> dict[ObjectKey, Trip]:
        """The trips among `keys` (one platform's objects)."""
        return {k: t for k, t in self._trips.items() if k in keys}

    def expire(self, now: float) -> None:
        """Bound memory: forget histories whose last write is out of the window (and not tripped)."""
        stale = [k for k, h in self._history.items() if not h.writes or h.writes[-1] <= now - self.window]
        for key in stale:
            if key not in self._trips:
                del self._history[key]
