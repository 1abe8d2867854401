"""The circuit breaker, stepped through its states with an injected clock (no waiting)."""

from __future__ import annotations

import math

import httpx
import pytest

from keelson_services.http import BreakerState, CircuitBreaker, CircuitOpenError, ServiceClient
from tests.unit.svc_helpers import FakeClock, RecordingSleep


def breaker(clock: FakeClock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    def record(_: str, state: BreakerState) -> None:
        if changes is not None:
            changes.append(state)

    return CircuitBreaker("payments", failure_threshold=3, open_seconds=30, clock=clock, on_change=record)


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        b.acquire()
        b.record_failure()


def test_opens_after_three_consecutive_failures_and_fails_fast_for_the_open_period() -> None:
    clock, changes = FakeClock(), []
    b = breaker(clock, changes)
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN and changes == [BreakerState.OPEN]
    for elapsed in (0, 10, 29.9):
        clock.now = 1000 + elapsed
        with pytest.raises(CircuitOpenError) as refused:
            b.acquire()
        assert refused.value.status_code == 503
        assert refused.value.retry_after == pytest.approx(30 - elapsed)
        assert refused.value.headers == {
            "Retry-After": str(math.ceil(30 - elapsed)),
            "x-keelson-failed-service": "payments",
        }


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    b = breaker(FakeClock())
    fail(b, 2)
    b.acquire()
    b.record_success()
    fail(b, 2)
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 2


def test_half_open_lets_exactly_one_probe_through_and_its_success_closes() -> None:
    clock, changes = FakeClock(), []
    b = breaker(clock, changes)
    fail(b, 3)
    clock.advance(30)
    b.acquire()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        b.acquire()  # everyone else still fails fast while the probe runs
    b.record_success()
    assert b.state is BreakerState.CLOSED
    b.acquire()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_opens_the_breaker_for_another_full_period() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(30)
    fail(b, 1)
    assert b.state is BreakerState.OPEN
    clock.advance(29)
    with pytest.raises(CircuitOpenError):
        b.acquire()
    clock.advance(1)
    b.acquire()
    assert b.state is BreakerState.HALF_OPEN


def test_a_probe_that_ends_without_a_verdict_lets_the_next_one_through() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(30)
    b.acquire()
    b.release()  # its caller went away
    b.acquire()
    assert b.state is BreakerState.HALF_OPEN


def test_late_verdicts_of_calls_admitted_before_opening_do_not_move_the_breaker() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        b.acquire()  # four calls in flight together
    for _ in range(3):
        b.record_failure()
    clock.advance(10)
    b.record_failure()  # the fourth fails late: the open period still ends at 30 s
    b.record_success()
    assert b.state is BreakerState.OPEN and b.retry_after() == pytest.approx(20)


async def test_the_client_fails_fast_without_calling_a_downstream_whose_breaker_is_open() -> None:
    clock, calls = FakeClock(), []
    healthy = False

    def payments(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200 if healthy else 500, json={})

    client = ServiceClient(
        service="orders",
        base_urls={"payments": "http://payments:8080"},
        transport=httpx.MockTransport(payments),
        clock=clock,
        sleep=RecordingSleep(clock),
    )
    async with client:
        for _ in range(3):  # POST without an idempotency key: never retried
            assert (await client.post("payments", "/charges", json={})).status_code == 500
        assert client.breaker("payments").state is BreakerState.OPEN
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                await client.post("payments", "/charges", json={})
        assert len(calls) == 3
        clock.advance(30)
        healthy = True
        assert (await client.post("payments", "/charges", json={})).status_code == 200
        assert client.breaker("payments").state is BreakerState.CLOSED
        assert len(calls) == 4


async def test_4xx_answers_do_not_count_as_failures() -> None:
    client = ServiceClient(
        service="orders",
        base_urls={"payments": "http://payments:8080"},
        transport=httpx.MockTransport(lambda _: httpx.Response(422, json={})),
    )
    async with client:
        for _ in range(5):
            assert (await client.post("payments", "/charges", json={})).status_code == 422
        assert client.breaker("payments").state is BreakerState.CLOSED


async def test_each_downstream_has_a_breaker_of_its_own() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500 if request.url.host == "payments" else 200)

    client = ServiceClient(
        service="orders",
        base_urls={"payments": "http://payments", "users": "http://users"},
        transport=httpx.MockTransport(handler),
        retry=None,
        sleep=RecordingSleep(),
    )
    async with client:
        for _ in range(3):
            await client.post("payments", "/x")
        assert client.breaker("payments").state is BreakerState.OPEN
        assert (await client.get("users", "/x")).status_code == 200
