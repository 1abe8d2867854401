"""Leader election on a Lease, with a fake clock and an in-memory Lease: expiry, take-over,
renewal, loss within the renew deadline and release, all without waiting."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from keelson.controller.leadership import (
    Action,
    Conflict,
    Elector,
    KubeLeaseStore,
    LeaseRecord,
    Observation,
    Timings,
    decide,
    lease_spec,
)
from keelson.kube.client import ApiError, KubeClient

TIMINGS = Timings(lease_duration=60, renew_deadline=40, retry_period=15)


def _record(holder: str, rv: str = "1", duration: int = 60, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(
        holder=holder, duration_seconds=duration, transitions=transitions, acquire_time=None, resource_version=rv
    )


class Stop(Exception):
    """Raised by the fake clock's sleep at its end of time, to end a loop that never returns."""


class Clock:
    """Monotonic time that only moves when someone sleeps; `at` runs a callback once that time
    is reached, `end` stops whoever sleeps past it."""

    def __init__(self, end: float = float("inf")) -> None:
        self.now = 1000.0
        self.end = end
        self.hooks: list[tuple[float, Any]] = []

    def __call__(self) -> float:
        return self.now

    def at(self, moment: float, hook: Any) -> None:
        self.hooks.append((moment, hook))

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        for moment, hook in [h for h in self.hooks if h[0] <= self.now]:
            self.hooks.remove((moment, hook))
            hook()
        if self.now > self.end:
            raise Stop
        await asyncio.sleep(0)


class MemoryLease:
    """One Lease with resourceVersion compare-and-swap, as the API server keeps it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False  # the API server unreachable
        self.writes: list[dict[str, Any]] = []
        self.waits: list[str] = []

    async def get(self) -> LeaseRecord | None:
        if self.down:
            raise ApiError(0, "ConnectionError", "refused")
        return self.record

    async def write(self, spec: dict[str, Any], *, resource_version: str | None) -> LeaseRecord:
        if self.down:
            raise ApiError(0, "ConnectionError", "refused")
        current = self.record.resource_version if self.record else None
        if resource_version != current:
            raise Conflict(f"expected {current}, got {resource_version}")
        self.version += 1
        self.writes.append(spec)
        self.record = LeaseRecord(
            holder=spec["holderIdentity"],
            duration_seconds=spec["leaseDurationSeconds"],
            transitions=spec["leaseTransitions"],
            acquire_time=spec["acquireTime"],
            resource_version=str(self.version),
        )
        return self.record

    async def wait(self, resource_version: str, seconds: float) -> None:
        """A watch that ends at the next write, or at the timeout (the fake clock's sleep)."""
        self.waits.append(resource_version)
        step = seconds / 20
        for _ in range(20):
            if self.record is not None and self.record.resource_version != resource_version:
                return
            await self.clock.sleep(step)


def _elector(store: MemoryLease, clock: Clock, identity: str) -> Elector:
    return Elector(
        store, identity=identity, timings=TIMINGS, clock=clock, wall=lambda: "t", sleep=clock.sleep, jitter=lambda: 0.0
    )


# --- the pure decision -------------------------------------------------------------------------


def test_no_lease_is_created() -> None:
    assert decide(Observation(), identity="a", now=0) is Action.CREATE


def test_own_lease_is_renewed_and_a_valid_foreign_one_waited_for() -> None:
    assert decide(Observation(_record("a"), 0), identity="a", now=5) is Action.RENEW
    assert decide(Observation(_record("b"), 0), identity="a", now=59.9) is Action.WAIT


def test_a_foreign_lease_expires_on_our_clock_from_when_we_first_saw_it() -> None:
    observation = Observation()
    observation.see(_record("b", rv="7"), 100)
    observation.see(_record("b", rv="7"), 150)  # the same record again: still counted from 100
    assert decide(observation, identity="a", now=159.9) is Action.WAIT
    assert decide(observation, identity="a", now=160) is Action.TAKE
    observation.see(_record("b", rv="8"), 160)  # renewed: the count starts again
    assert decide(observation, identity="a", now=219) is Action.WAIT


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(Observation(_record(""), 0), identity="a", now=0) is Action.TAKE


def test_spec_counts_transitions_and_keeps_acquire_time_on_renewal() -> None:
    previous = LeaseRecord(holder="b", duration_seconds=60, transitions=3, acquire_time="then", resource_version="1")
    taken = lease_spec(Action.TAKE, previous, identity="a", duration=60, now="now")
    assert taken == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 60,
        "acquireTime": "now",
        "renewTime": "now",
        "leaseTransitions": 4,
    }
    renewed = lease_spec(Action.RENEW, previous, identity="b", duration=60, now="now")
    assert renewed["acquireTime"] == "then" and renewed["leaseTransitions"] == 3


@pytest.mark.parametrize(("lease", "deadline", "retry"), [(10, 10, 2), (15, 10, 9), (15, 10, 0)])
def test_timings_that_would_let_two_leaders_overlap_are_refused(lease: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        Timings(lease_duration=lease, renew_deadline=deadline, retry_period=retry)


def test_timings_from_env() -> None:
    env = {
        "KEELSON_LEASE_DURATION_SECONDS": "6",
        "KEELSON_LEASE_RENEW_DEADLINE_SECONDS": "4",
        "KEELSON_LEASE_RETRY_PERIOD_SECONDS": "1",
    }
    assert Timings.from_env(env) == Timings(6, 4, 1)
    assert Timings.from_env({}) == Timings()


# --- the elector -------------------------------------------------------------------------------


async def test_first_candidate_creates_the_lease_the_second_waits() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    assert await a.try_once()
    assert not await b.try_once()
    assert store.record is not None and store.record.holder == "a" and len(store.writes) == 1


async def test_a_leader_renews_once_per_retry_period_and_nothing_else() -> None:
    clock = Clock(end=1000 + 10 * TIMINGS.retry_period)
    store = MemoryLease(clock)
    a = _elector(store, clock, "a")
    await a.acquire()
    with pytest.raises(Stop):
        await a.hold()
    assert len(store.writes) == 1 + 10  # the creation, then one renewal per period
    assert all(w["holderIdentity"] == "a" for w in store.writes)


async def test_a_crashed_leader_is_replaced_after_the_lease_duration_on_the_standbys_clock() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    assert await a.try_once()  # then a crashes: no more renewals
    crashed_at = clock.now
    await b.acquire()
    assert store.record is not None and store.record.holder == "b" and store.record.transitions == 1
    waited = clock.now - crashed_at
    assert TIMINGS.lease_duration <= waited <= TIMINGS.lease_duration + TIMINGS.retry_period


async def test_a_leader_that_cannot_renew_gives_up_within_the_renew_deadline_before_the_lease_ends() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a = _elector(store, clock, "a")
    await a.acquire()
    acquired_at = clock.now
    store.down = True
    await a.hold()  # returns: leadership lost
    assert not a.leading
    assert clock.now - acquired_at <= TIMINGS.renew_deadline < TIMINGS.lease_duration


async def test_a_failed_renewal_is_retried_and_one_success_within_the_deadline_keeps_leadership() -> None:
    clock = Clock(end=1000 + 5 * TIMINGS.retry_period)
    store = MemoryLease(clock)
    a = _elector(store, clock, "a")
    await a.acquire()
    store.down = True

    def recover() -> None:
        store.down = False

    # Down for the first renewal and its first retry, back well inside the renew deadline.
    clock.at(1000 + TIMINGS.retry_period + 5, recover)
    with pytest.raises(Stop):  # still renewing at the end of time: leadership never lost
        await a.hold()
    assert a.leading and store.record is not None and store.record.holder == "a"


async def test_a_leader_whose_lease_was_taken_stops_at_its_next_renewal() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a = _elector(store, clock, "a")
    await a.acquire()
    assert store.record is not None
    # Someone else overwrote it (an admin, or a candidate whose clock ran fast).
    await store.write(lease_spec(Action.TAKE, store.record, identity="b", duration=60, now="t"), resource_version="1")
    await a.hold()
    assert not a.leading


async def test_release_hands_the_lease_over_at_once() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    await a.acquire()
    assert not await b.try_once()
    await a.release()
    assert store.record is not None and store.record.holder == "" and store.record.duration_seconds == 1
    assert await b.try_once()  # no waiting out the lease


async def test_release_by_a_non_leader_writes_nothing() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    await a.acquire()
    await b.try_once()
    await b.release()
    assert len(store.writes) == 1


async def test_of_two_candidates_racing_for_an_expired_lease_one_wins() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a, b, c = (_elector(store, clock, name) for name in "abc")
    await a.try_once()
    await b.try_once()
    await c.try_once()  # both see a's record now
    clock.now += TIMINGS.lease_duration
    results = await asyncio.gather(b.try_once(), c.try_once())
    assert sorted(results) == [False, True]
    assert not (b.leading and c.leading)


async def test_contact_tells_readiness() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a = _elector(store, clock, "a")
    assert not a.in_contact()
    await a.try_once()
    assert a.in_contact()
    clock.now += TIMINGS.lease_duration
    assert not a.in_contact()


async def test_a_leader_is_valid_only_within_the_renew_deadline_of_its_last_renewal() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a = _elector(store, clock, "a")
    assert not a.valid()
    await a.acquire()
    assert a.valid()
    clock.now += TIMINGS.renew_deadline  # frozen: no renewal ran
    assert not a.valid()


async def test_a_standby_watches_the_lease_and_takes_a_release_without_waiting_a_retry_period() -> None:
    clock = Clock()
    store = MemoryLease(clock)
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    await a.acquire()
    waiting = asyncio.create_task(b.acquire())
    await asyncio.sleep(0)
    assert store.waits == ["1"] and not waiting.done()  # watching from what it read
    released_at = clock.now
    await a.release()
    await waiting
    assert store.record is not None and store.record.holder == "b"
    assert clock.now - released_at < TIMINGS.retry_period / 2


# --- the Kubernetes side -------------------------------------------------------------------------


def _store(handler: Any) -> KubeLeaseStore:
    configuration = SimpleNamespace(
        host="http://kube.test",
        verify_ssl=False,
        ssl_ca_cert=None,
        cert_file=None,
        key_file=None,
        refresh_api_key_hook=None,
        get_api_key_with_prefix=lambda _key: "Bearer test",
    )
    client = KubeClient(configuration, transport=httpx.MockTransport(handler), user_agent="keelson-operator/0 (a_1)")
    return KubeLeaseStore(client, "ops")


async def test_the_store_takes_over_with_a_resource_version_precondition_and_maps_409() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(409, json={"reason": "Conflict", "message": "the object has been modified"})

    with pytest.raises(Conflict):
        await _store(handler).write({"holderIdentity": "a_1"}, resource_version="41")
    (request,) = seen
    body = json.loads(request.content)
    assert (
        request.method == "PUT"
        and request.url.path == "/apis/coordination.k8s.io/v1/namespaces/ops/leases/keelson-operator"
    )
    assert body["metadata"]["resourceVersion"] == "41" and request.headers["User-Agent"] == "keelson-operator/0 (a_1)"


async def test_the_store_watches_the_one_lease_from_the_version_read_and_returns_at_the_first_event() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b'{"type":"MODIFIED","object":{}}\n')

    await _store(handler).wait("41", 15)
    params = seen[0].url.params
    assert params["watch"] == "true" and params["resourceVersion"] == "41"
    assert params["fieldSelector"] == "metadata.name=keelson-operator" and params["timeoutSeconds"] == "15"
