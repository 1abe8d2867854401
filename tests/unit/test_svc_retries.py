"""Retries: only for requests safe to repeat, on the platform's schedule with jitter, and never
past an open breaker; timeouts bound every attempt."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY

from keelson_services.http import (
    CircuitOpenError,
    DownstreamTimeoutError,
    DownstreamUnreachableError,
    RetryPolicy,
    ServiceClient,
    may_retry,
)
from tests.unit.svc_helpers import FakeClock, RecordingSleep


def retries_counted() -> float:
    value = REGISTRY.get_sample_value(
        "keelson_http_client_retries_total", {"service": "orders", "downstream": "payments"}
    )
    return value or 0.0


def flaky(failures: int, status: int = 503) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A downstream that fails `failures` times, then answers 200."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status if len(seen) <= failures else 200, json={"n": len(seen)})

    return httpx.MockTransport(handler), seen


def client(transport: httpx.AsyncBaseTransport, sleep: RecordingSleep, **kwargs: object) -> ServiceClient:
    options: dict[str, object] = {
        "service": "orders",
        "base_urls": {"payments": "http://payments:8080"},
        "transport": transport,
        "sleep": sleep,
        "breaker_failures": 10,
        "retry": RetryPolicy((1, 2, 4, 8), 3, random=lambda: 0.5),
    }
    return ServiceClient(**(options | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, True),
        ("PUT", {}, True),
        ("DELETE", {}, True),
        ("POST", {}, False),
        ("PATCH", {}, False),
        ("POST", {"Idempotency-Key": "k1"}, True),
    ],
)
def test_only_requests_safe_to_repeat_are_retried(method: str, headers: dict[str, str], expected: bool) -> None:
    assert may_retry(method, headers) is expected


def test_backoff_follows_the_schedule_with_equal_jitter() -> None:
    low, high = RetryPolicy((1, 2, 4), 5, random=lambda: 0.0), RetryPolicy((1, 2, 4), 5, random=lambda: 0.999999)
    assert [low.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 2, 2]  # the last step repeats
    assert [round(high.delay(n), 3) for n in range(1, 4)] == [1, 2, 4]


async def test_a_get_is_retried_on_the_schedule_until_it_succeeds() -> None:
    transport, seen = flaky(2)
    sleep = RecordingSleep()
    before = retries_counted()
    async with client(transport, sleep) as c:
        response = await c.get("payments", "/charges/1")
    assert response.status_code == 200 and len(seen) == 3
    assert sleep.delays == [0.75, 1.5]  # 1 s and 2 s, jittered into [d/2, d]
    assert retries_counted() - before == 2


async def test_retries_stop_after_the_configured_count_and_return_the_last_answer() -> None:
    transport, seen = flaky(10)
    sleep = RecordingSleep()
    async with client(transport, sleep) as c:
        response = await c.get("payments", "/charges/1")
    assert response.status_code == 503 and len(seen) == 4 and len(sleep.delays) == 3


async def test_a_post_is_not_retried_but_one_with_an_idempotency_key_is() -> None:
    transport, seen = flaky(1)
    sleep = RecordingSleep()
    async with client(transport, sleep) as c:
        assert (await c.post("payments", "/charges", json={})).status_code == 503
        assert len(seen) == 1
        keyed = await c.post("payments", "/charges", json={}, headers={"Idempotency-Key": "order-1"})
    assert keyed.status_code == 200 and len(seen) == 2
    assert seen[1].headers["idempotency-key"] == "order-1"


async def test_a_500_is_not_retried_it_may_not_be_transient() -> None:
    transport, seen = flaky(1, status=500)
    async with client(transport, RecordingSleep()) as c:
        assert (await c.get("payments", "/x")).status_code == 500
    assert len(seen) == 1


async def test_retries_end_when_the_breaker_opens() -> None:
    transport, seen = flaky(10)
    async with client(transport, RecordingSleep(), breaker_failures=2) as c:
        with pytest.raises(CircuitOpenError):
            await c.get("payments", "/x")
    assert len(seen) == 2


async def test_connection_failures_are_retried_then_reported_as_503() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sleep = RecordingSleep()
    async with client(httpx.MockTransport(refuse), sleep) as c:
        with pytest.raises(DownstreamUnreachableError) as failure:
            await c.get("payments", "/x")
    assert failure.value.status_code == 503
    assert failure.value.headers == {"Retry-After": "1", "x-keelson-failed-service": "payments"}
    assert len(sleep.delays) == 3


async def test_every_attempt_is_bounded_by_the_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers
        raise AssertionError

    async with client(httpx.MockTransport(hang), RecordingSleep(), timeout_seconds=0.05) as c:
        with pytest.raises(DownstreamTimeoutError) as failure:
            await c.post("payments", "/charges", json={})
    assert failure.value.status_code == 504
    assert failure.value.code == "downstream_timeout"


async def test_timeouts_count_as_breaker_failures() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    clock = FakeClock()
    async with client(httpx.MockTransport(slow), RecordingSleep(clock), breaker_failures=3, clock=clock) as c:
        for _ in range(3):
            with pytest.raises(DownstreamTimeoutError):
                await c.post("payments", "/charges", json={})
        with pytest.raises(CircuitOpenError):
            await c.post("payments", "/charges", json={})
