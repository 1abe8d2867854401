"""The write-loop guard's bookkeeping, and the reconciler stopping a loop (in-memory API)."""

from typing import Any

from keelson.controller.cache import DictCache
from keelson.controller.loopguard import LoopGuard
from keelson.controller.reconciler import Reconciler
from tests.unit.test_reconciler import FakeApi, _platform

KEY = ("ConfigMap", "ns", "orders-config")


def test_trips_after_max_writes_in_the_window_and_backs_off() -> None:
    guard = LoopGuard(max_writes=3, window=60, first_backoff=10)
    for t in range(3):
        assert guard.check(KEY, 1, t, ["data.X"]) is None
        guard.record(KEY, 1, t)
    trip = guard.check(KEY, 1, 3, ["data.X"])
    assert trip is not None and trip.fields == ["data.X"] and trip.until == 13
    assert guard.check(KEY, 1, 12, ["data.X"]) is trip  # held back during the backoff
    assert guard.check(KEY, 1, 13, ["data.X"]) is None  # one try after it
    guard.record(KEY, 1, 13)
    again = guard.check(KEY, 1, 14, ["data.X"])
    assert again is not None and again.until == 14 + 20  # still looping: twice as long


def test_writes_spread_beyond_the_window_never_trip() -> None:
    guard = LoopGuard(max_writes=3, window=60, first_backoff=10)
    for t in range(0, 1000, 30):
        assert guard.check(KEY, 1, t, []) is None
        guard.record(KEY, 1, t)


def test_a_new_generation_lifts_the_trip_and_settling_ends_it() -> None:
    guard = LoopGuard(max_writes=1, window=60, first_backoff=100)
    guard.record(KEY, 1, 0)
    assert guard.check(KEY, 1, 1, []) is not None
    assert guard.check(KEY, 2, 2, []) is None  # the owner changed the platform
    guard.record(KEY, 2, 2)
    assert guard.check(KEY, 2, 3, []) is not None
    guard.settled(KEY)
    assert guard.active({KEY}) == {}


class FightingApi(FakeApi):
    """Someone else's mutating admission: every ConfigMap we write is stored with one key changed."""

    async def apply(self, obj: dict[str, Any], *, field_manager: str = "keelson-operator") -> dict[str, Any]:
        live = await super().apply(obj, field_manager=field_manager)
        if obj["kind"] == "ConfigMap":
            live["data"] = {**live["data"], "KEELSON_HTTP_TIMEOUT_SECONDS": "99"}
        return live


async def test_the_reconciler_stops_a_loop_and_says_which_fields() -> None:
    cache = DictCache()
    api = FightingApi(cache)
    clock = iter(range(1000))
    rec = Reconciler(
        api,  # type: ignore[arg-type]
        cache,
        reference_image="img:1",
        now=lambda: "2026-01-01T00:00:00Z",
        guard=LoopGuard(max_writes=3, window=600, first_backoff=300),
        clock=lambda: float(next(clock)),
    )
    platform = _platform()
    for _ in range(10):
        outcome = await rec.reconcile(platform)
        platform["status"] = api.status
    writes = [c for c in api.calls if c == ("apply", "ConfigMap", "orders-config")]
    assert len(writes) == 3  # then it stopped
    ready = api.status["conditions"][0]  # type: ignore[index]
    assert ready["type"] == "Ready" and ready["status"] == "False" and ready["reason"] == "WriteLoop"
    assert "data.KEELSON_HTTP_TIMEOUT_SECONDS" in ready["message"] and "ConfigMap/" in ready["message"]
    events = [c for c in api.calls if c[0] == "create" and c[2] == "WriteLoop"]
    assert len(events) == 1
    assert not outcome.ready
