"""`/api/v1/payments`: charge (`POST`, Idempotency-Key required), read, list by order, and refund
(`POST /{id}/refund`, Idempotency-Key required).

Charges and refunds run through the idempotency store: the same key and body replays the stored
answer byte for byte (with `Idempotent-Replayed: true`), the same key with another body is 422,
and a repeat while the first still runs is 409, so no retry, however concurrent, charges twice.
A declined charge is a payment too: 201 with `status: failed` (and `payment.failed`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keelson_services.contracts.payments import ChargeRequest, Payment, PaymentList, RefundRequest
from keelson_services.errors import ApiError
from keelson_services.idempotency import StoredResponse, fingerprint, validate_key
from keelson_services.services.payments.deps import Components, IdempotencyKeyHeader

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])

REPLAYED_HEADER = "Idempotent-Replayed"


async def idempotent(
    parts: Components,
    request: Request,
    *,
    scope: str,
    key: str | None,
    body: Any,
    run: Callable[[str], Awaitable[tuple[int, Payment]]],
) -> Response:
    key = validate_key(key)

    async def handler() -> StoredResponse:
        status, payment = await run(key)
        content = payment.model_dump_json().encode()
        headers = {"content-type": "application/json", "location": f"/api/v1/payments/{payment.id}"}
        return StoredResponse(status, content, headers)

    stored, replayed = await parts.idempotency.run(
        scope=scope,
        key=key,
        request_fingerprint=fingerprint(request.method, request.url.path, body),
        handler=handler,
    )
    headers = dict(stored.headers) | ({REPLAYED_HEADER: "true"} if replayed else {})
    return Response(stored.body, status_code=stored.status, headers=headers)


@router.post("", status_code=201, response_model=Payment, summary="Charge for an order")
async def charge(
    body: ChargeRequest, request: Request, parts: Components, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    async def run(key: str) -> tuple[int, Payment]:
        return 201, await parts.charges.charge(key, body)

    return await idempotent(
        parts, request, scope="payments.charge", key=idempotency_key, body=body.model_dump(mode="json"), run=run
    )


@router.post("/{payment_id}/refund", response_model=Payment, summary="Refund a payment, fully or in part")
async def refund(
    payment_id: UUID,
    request: Request,
    parts: Components,
    body: RefundRequest | None = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    body = body or RefundRequest()

    async def run(key: str) -> tuple[int, Payment]:
        return 200, await parts.charges.refund(payment_id, key, body)

    return await idempotent(
        parts, request, scope="payments.refund", key=idempotency_key, body=body.model_dump(mode="json"), run=run
    )


@router.get("/{payment_id}", response_model=Payment, summary="One payment")
async def read_payment(payment_id: UUID, parts: Components) -> Payment:
    payment = await parts.payments.get(payment_id)
    if payment is None:
        raise ApiError(404, "not_found", "No such payment")
    return payment


@router.get("", response_model=PaymentList, summary="The payments of an order")
async def list_payments(parts: Components, order_id: Annotated[UUID, Query()]) -> PaymentList:
    return PaymentList(items=await parts.payments.for_order(order_id))
