"""Orders' calls to payments through the resilient client, with an injected clock and sleep (no
waiting): keys derived from the order, retries only thanks to them, the breaker opening after 3
failures, failing fast for 30 s with 503 + Retry-After, the half-open probe, and recovery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from keelson_services.errors import ApiError
from keelson_services.http import BreakerState, CircuitOpenError, DownstreamTimeoutError, RetryPolicy, ServiceClient
from keelson_services.services.orders.payments_client import PaymentsClient, charge_key, refund_key
from tests.unit.svc_helpers import FakeClock, RecordingSleep

ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")


def payment(**overrides: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    return {
        "id": str(uuid.uuid4()), "order_id": str(ORDER), "customer_id": "user-1", "status": "succeeded",
        "amount_cents": 2500, "currency": "EUR", "refunded_cents": 0, "provider_reference": "ch_1",
        "created_at": now, "updated_at": now,
    } | overrides  # fmt: skip


class Payments:
    """A scripted payments service: answers from `script` in turn, recording every request."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        status, body = step
        return httpx.Response(status, json=body)


def client(payments: Payments, clock: FakeClock, *, retries: int = 3) -> tuple[PaymentsClient, RecordingSleep]:
    sleep = RecordingSleep(clock)
    service = ServiceClient(
        service="orders",
        base_urls={"payments": "http://payments.shop.svc:8080"},
        timeout_seconds=5,
        breaker_failures=3,
        breaker_open_seconds=30,
        retry=RetryPolicy((1, 2, 4), retries, random=lambda: 1.0),
        transport=httpx.MockTransport(payments),
        clock=clock,
        sleep=sleep,
    )
    return PaymentsClient(service), sleep


async def charge(c: PaymentsClient) -> Any:
    return await c.charge(order_id=ORDER, user_id="user-1", amount_cents=2500, currency="EUR")


async def test_a_charge_carries_the_order_s_key_and_is_retried_with_it_after_a_connection_failure() -> None:
    clock = FakeClock()
    payments = Payments(httpx.ConnectError("refused"), (201, payment()))
    c, sleep = client(payments, clock)
    paid = await charge(c)
    assert paid.status == "succeeded" and sleep.delays == [1.0]
    keys = {r.headers["idempotency-key"] for r in payments.requests}
    assert keys == {charge_key(ORDER)} == {f"order-{ORDER}-charge"} and len(payments.requests) == 2
    assert refund_key(ORDER) != charge_key(ORDER)


async def test_three_failures_open_the_breaker_then_calls_fail_fast_for_30_s_then_a_probe_recovers() -> None:
    clock = FakeClock()
    payments = Payments(httpx.ConnectError("refused"))
    c, _ = client(payments, clock, retries=0)  # one attempt per call: calls and attempts are the same
    for _ in range(3):
        with pytest.raises(ApiError) as failed:
            await charge(c)
        assert failed.value.status_code == 503 and failed.value.code == "service_unavailable"
    assert len(payments.requests) == 3 and c.client.breaker("payments").state is BreakerState.OPEN

    for elapsed in (0, 15, 29):
        clock.now = 1000 + elapsed
        with pytest.raises(CircuitOpenError) as fast:
            c.check_available()  # what orders asks before creating anything
        assert fast.value.headers == {"Retry-After": str(30 - elapsed), "x-keelson-failed-service": "payments"}
        with pytest.raises(CircuitOpenError):
            await charge(c)
    assert len(payments.requests) == 3  # nothing reached payments while open

    clock.now = 1030
    c.check_available()
    payments.script = [(201, payment())]
    assert (await charge(c)).status == "succeeded"  # the probe
    assert c.client.breaker("payments").state is BreakerState.CLOSED and len(payments.requests) == 4


async def test_a_timeout_is_a_504_and_counts_towards_the_breaker() -> None:
    clock = FakeClock()
    c, _ = client(Payments(httpx.ReadTimeout("slow")), clock, retries=0)
    with pytest.raises(DownstreamTimeoutError) as slow:
        await charge(c)
    assert slow.value.status_code == 504 and c.client.breaker("payments").consecutive_failures == 1


async def test_with_retries_the_first_call_uses_up_the_breaker_and_the_next_fails_fast() -> None:
    clock = FakeClock()
    payments = Payments(httpx.ConnectError("refused"))
    c, sleep = client(payments, clock)
    with pytest.raises(CircuitOpenError):
        await charge(c)  # attempts 1-3 fail, the 4th meets the open breaker
    # (The client still waits out the third backoff before the breaker refuses the 4th attempt.)
    assert len(payments.requests) == 3 and sleep.delays == [1.0, 2.0, 4.0]
    with pytest.raises(CircuitOpenError):
        await charge(c)
    assert len(payments.requests) == 3


@pytest.mark.parametrize(
    ("status", "error", "expected_status", "expected_code"),
    [
        (409, {"code": "request_in_progress"}, 409, "payment_in_progress"),
        (422, {"code": "validation_failed"}, 502, "payment_error"),
        (500, {"code": "internal_error"}, 502, "payment_error"),
        (503, {"code": "unavailable"}, 503, "service_unavailable"),
    ],
)
async def test_answers_without_a_payment_become_clear_errors(
    status: int, error: dict[str, str], expected_status: int, expected_code: str
) -> None:
    c, _ = client(Payments((status, {"error": error})), FakeClock(), retries=0)
    with pytest.raises(ApiError) as refused:
        await charge(c)
    assert (refused.value.status_code, refused.value.code) == (expected_status, expected_code)
