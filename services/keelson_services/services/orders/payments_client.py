"""Orders' view of the payments service: charge and refund an order over HTTP through the
resilient client (the platform's timeout, circuit breaker and retries).

The Idempotency-Keys derive from the order id, so every attempt, retry and re-run for one order
is the same request to payments: it charges (and refunds) each order at most once. Failures that
leave no verdict come back as `ApiError`s the routes answer with: the client's 503 + Retry-After
(circuit open, unreachable) or 504 (timeout), and 502 for an answer that makes no sense.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from keelson_services.contracts.payments import ChargeRequest, Payment, RefundRequest
from keelson_services.errors import ApiError
from keelson_services.http import BreakerState, CircuitOpenError, ServiceClient
from keelson_services.http.errors import FAILED_SERVICE_HEADER, failed_service

SERVICE = "payments"


def charge_key(order_id: UUID) -> str:
    return f"order-{order_id}-charge"


def refund_key(order_id: UUID, attempt: int = 0) -> str:
    """The key of an order's refund; a declined refund is asked again under the next attempt's."""
    return f"order-{order_id}-refund" + (f"-{attempt}" if attempt else "")


class RefundDeclinedError(ApiError):
    def __init__(self) -> None:
        super().__init__(
            502,
            "refund_declined",
            "The payment provider declined the refund; the order stays paid, and cancelling it again retries",
        )


class PaymentsClient:
    def __init__(self, client: ServiceClient, service: str = SERVICE) -> None:
        self.client = client
        self.service = service

    def check_available(self) -> None:
        """Fail fast (`CircuitOpenError`, 503 + Retry-After) while payments' circuit is open."""
        breaker = self.client.breaker(self.service)
        if breaker.state is BreakerState.OPEN and breaker.retry_after() > 0:
            raise CircuitOpenError(self.service, breaker.retry_after())

    async def charge(self, *, order_id: UUID, user_id: str, amount_cents: int, currency: str) -> Payment:
        body = ChargeRequest(
            order_id=order_id, customer_id=user_id, amount_cents=amount_cents, currency=currency,
            description=f"order {order_id}",
        )  # fmt: skip
        response = await self.client.post(
            self.service,
            "/api/v1/payments",
            json=body.model_dump(mode="json"),
            headers={"Idempotency-Key": charge_key(order_id)},
        )
        return self._payment(response, expected=(200, 201))

    async def refund(self, *, order_id: UUID, payment_id: UUID, reason: str, attempt: int = 0) -> Payment:
        response = await self.client.post(
            self.service,
            f"/api/v1/payments/{payment_id}/refund",
            json=RefundRequest(reason=reason).model_dump(mode="json"),
            headers={"Idempotency-Key": refund_key(order_id, attempt)},
        )
        if response.status_code == 502 and _error(response).get("code") == "refund_failed":
            raise RefundDeclinedError()  # a verdict, not an outage: not a 503 to retry as is
        return self._payment(response, expected=(200,))

    def _payment(self, response: httpx.Response, *, expected: tuple[int, ...]) -> Payment:
        if response.status_code in expected:
            return Payment.model_validate_json(response.content)
        error = _error(response)
        if response.status_code == 409 and error.get("code") == "request_in_progress":
            raise ApiError(
                409,
                "payment_in_progress",
                "The payment of this order is still being processed; retry later",
                headers={"Retry-After": response.headers.get("retry-after", "1")},
            )
        status = 503 if response.status_code in (502, 503, 504) else 502
        # Payments (or a service behind it) failed, not orders: say so to orders' own callers.
        headers = {FAILED_SERVICE_HEADER: failed_service(response.headers) or self.service}
        if "retry-after" in response.headers:
            headers["Retry-After"] = response.headers["retry-after"]
        raise ApiError(
            status,
            "payment_error" if status == 502 else "service_unavailable",
            f"The payments service answered {response.status_code}",
            details={"service": self.service, "status": response.status_code, "error": error},
            headers=headers,
        )


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
