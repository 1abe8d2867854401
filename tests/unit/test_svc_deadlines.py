"""A call chain shares one time budget, and a failure passed on from further down is no verdict on
the service that passed it on: the gateway's breaker for orders stays closed while payments is
down, and nobody retries at every layer."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from keelson_services.http import (
    BreakerState,
    CircuitOpenError,
    DownstreamTimeoutError,
    DownstreamUnreachableError,
    RetryPolicy,
    ServiceClient,
    deadline,
)
from keelson_services.http.errors import FAILED_SERVICE_HEADER, DeadlineExceededError
from keelson_services.observability.middleware import ObservabilityMiddleware
from tests.unit.svc_helpers import FakeClock, RecordingSleep


def client(transport: httpx.AsyncBaseTransport, clock: FakeClock | None = None, **kwargs: object) -> ServiceClient:
    options: dict[str, object] = {
        "service": "gateway",
        "base_urls": {"orders": "http://orders:8080"},
        "transport": transport,
        "breaker_failures": 3,
        "retry": RetryPolicy((1, 2, 4, 8), 3, random=lambda: 0.99),  # delays just under 1, 2, 4 s
    }
    if clock is not None:
        options |= {"clock": clock, "sleep": RecordingSleep(clock)}
    return ServiceClient(**(options | kwargs))  # type: ignore[arg-type]


def answering(status: int, headers: dict[str, str] | None = None) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"error": {"code": "x", "message": "x", "details": {}}}, headers=headers)

    return httpx.MockTransport(handler), seen


async def test_a_failure_passed_on_from_further_down_is_not_retried_nor_held_against_the_downstream() -> None:
    transport, seen = answering(503, {FAILED_SERVICE_HEADER: "payments", "Retry-After": "30"})
    async with client(transport, FakeClock()) as c:
        for _ in range(5):
            response = await c.post("orders", "/api/v1/orders", headers={"Idempotency-Key": "k"})
            assert response.status_code == 503 and response.headers["retry-after"] == "30"
        assert c.breaker("orders").state is BreakerState.CLOSED
        assert c.breaker("orders").consecutive_failures == 0
    assert len(seen) == 5  # one attempt each: payments' neighbour already retried


async def test_the_downstreams_own_failure_is_retried_and_opens_its_breaker() -> None:
    transport, seen = answering(503, {FAILED_SERVICE_HEADER: "orders"})
    async with client(transport, FakeClock()) as c:
        with pytest.raises(CircuitOpenError):
            await c.get("orders", "/api/v1/orders")
    assert len(seen) == 3


async def test_each_attempt_sends_the_time_its_caller_will_wait() -> None:
    transport, seen = answering(200)
    clock = FakeClock()
    async with client(transport, clock) as c:
        await c.get("orders", "/x")
        with deadline.activated(clock() + 2.0):
            await c.get("orders", "/x")
    assert [r.headers[deadline.TIMEOUT_HEADER] for r in seen] == [
        "5000",
        str(int((2.0 - deadline.MARGIN_SECONDS) * 1000)),
    ]


async def test_retries_stop_when_the_next_one_would_outlive_the_deadline() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    clock = FakeClock()
    async with client(httpx.MockTransport(refuse), clock, breaker_failures=10) as c:
        start = clock()
        with deadline.activated(start + 2.5), pytest.raises(DownstreamUnreachableError):
            await c.get("orders", "/x")
        # Attempts at 0 and ~1 s; the next would come after ~3 s, past the caller's 2.5 s.
        assert clock() - start == pytest.approx(0.995)
    assert c.breaker("orders").consecutive_failures == 2


async def test_no_time_left_fails_at_once_without_calling() -> None:
    transport, seen = answering(200)
    clock = FakeClock()
    async with client(transport, clock) as c:
        with deadline.activated(clock() + 0.05), pytest.raises(DeadlineExceededError) as exceeded:
            await c.get("orders", "/x")
        assert c.breaker("orders").consecutive_failures == 0
    assert seen == [] and exceeded.value.status_code == 504
    assert exceeded.value.headers == {FAILED_SERVICE_HEADER: "orders"}


async def test_a_timeout_cut_short_by_the_callers_deadline_is_no_verdict_on_the_downstream() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers
        raise AssertionError

    async with client(httpx.MockTransport(slow), retry=RetryPolicy((), 0)) as c:
        with deadline.activated(time.monotonic() + 0.3), pytest.raises(DownstreamTimeoutError):
            await c.get("orders", "/x")
        assert c.breaker("orders").consecutive_failures == 0
    # The platform's own timeout is a verdict.
    async with client(httpx.MockTransport(slow), retry=RetryPolicy((), 0), timeout_seconds=0.2) as c:
        with pytest.raises(DownstreamTimeoutError):
            await c.get("orders", "/x")
        assert c.breaker("orders").consecutive_failures == 1


async def _deadline_seen(trust: bool, headers: list[tuple[bytes, bytes]]) -> float | None:
    seen: list[float | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(deadline.current())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: object) -> None:
        return None

    middleware = ObservabilityMiddleware(app, service="orders", trust_identity_headers=trust)
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": headers}
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    return seen[0]


async def test_services_take_their_callers_wait_as_their_deadline_but_the_gateway_does_not() -> None:
    before = time.monotonic()
    found = await _deadline_seen(True, [(b"x-keelson-timeout-ms", b"1500")])
    assert found is not None and before + 1.5 <= found <= time.monotonic() + 1.5
    assert await _deadline_seen(True, []) is None
    assert await _deadline_seen(True, [(b"x-keelson-timeout-ms", b"soon")]) is None
    assert await _deadline_seen(False, [(b"x-keelson-timeout-ms", b"1500")]) is None
