"""`/api/v1/orders`: place an order (Idempotency-Key required), list and read the caller's own
orders, cancel one. The caller is the user the gateway established (`X-User-Id`).

An order names SKUs and quantities; the catalogue prices them and reserves their stock (an
unknown SKU is 422 `unknown_sku`, too few units 409 `out_of_stock`, and nothing is created).

Placing an order answers 201 with the order as payments left it: `paid`, or `payment_failed` when
the charge was declined. When payments gives no verdict (its circuit open, unreachable, too slow)
the answer is that 503 (with Retry-After) or 504, the order stays `pending`, and retrying with the
same Idempotency-Key resumes it; it never charges twice. The same key with the same body replays
the first answer (`Idempotent-Replayed: true`), with another body it is 422, and while the first
request still runs 409.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keelson_services.contracts.orders import CreateOrderRequest, Order, OrderList
from keelson_services.deps import CurrentIdentity
from keelson_services.errors import ApiError
from keelson_services.idempotency import StoredResponse, fingerprint, validate_key
from keelson_services.services.orders.deps import Components, IdempotencyKeyHeader

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

REPLAYED_HEADER = "Idempotent-Replayed"


@router.post("", status_code=201, response_model=Order, summary="Place an order")
async def create_order(
    body: CreateOrderRequest,
    request: Request,
    caller: CurrentIdentity,
    parts: Components,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    key = validate_key(idempotency_key)

    async def handler() -> StoredResponse:
        order = await parts.flows.create(user_id=caller.user_id, key=key, body=body)
        headers = {"content-type": "application/json", "location": f"/api/v1/orders/{order.id}"}
        return StoredResponse(201, order.model_dump_json().encode(), headers)

    stored, replayed = await parts.idempotency.run(
        scope=f"orders.create:{caller.user_id}",  # keys are per customer: another's key is no clash
        key=key,
        request_fingerprint=fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        handler=handler,
    )
    headers = dict(stored.headers) | ({REPLAYED_HEADER: "true"} if replayed else {})
    return Response(stored.body, status_code=stored.status, headers=headers)


@router.get("", response_model=OrderList, summary="My orders, newest first")
async def list_orders(
    caller: CurrentIdentity,
    parts: Components,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrderList:
    page = await parts.orders.page(user_id=caller.user_id, limit=limit or parts.config.page_limit, offset=offset)
    return OrderList(items=page)


@router.get("/{order_id}", response_model=Order, summary="One of my orders")
async def read_order(order_id: UUID, caller: CurrentIdentity, parts: Components) -> Order:
    order = await parts.orders.get(order_id, user_id=caller.user_id)
    if order is None:  # another customer's order does not exist, as far as this caller knows
        raise ApiError(404, "not_found", "No such order")
    return order


@router.post("/{order_id}/cancel", response_model=Order, summary="Cancel an order (a paid one is refunded)")
async def cancel_order(order_id: UUID, caller: CurrentIdentity, parts: Components) -> Order:
    return await parts.flows.cancel(user_id=caller.user_id, order_id=order_id)
