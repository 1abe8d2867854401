"""The orders part of the public API, forwarded to the service exposed at `/orders`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from keelson_services.contracts.orders import CreateOrderRequest, Order, OrderList
from keelson_services.services.gateway.api.routes.documented import answers
from keelson_services.services.gateway.deps import Caller, Gateway, VerifiedCaller
from keelson_services.services.gateway.proxy import forward

AREA = "/orders"
router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="A unique key per order attempt: a retry with the same key and body returns the same order.",
    ),
]


async def _to_orders(gateway: Gateway, request: Request, caller: Caller) -> Response:
    return await forward(gateway.client, request, service=gateway.routes.for_area(AREA).service, caller=caller)


@router.post("", summary="Place an order", status_code=201, response_model=None, responses=answers(201, Order))
async def create_order(
    body: CreateOrderRequest,
    idempotency_key: IdempotencyKey,
    request: Request,
    gateway: Gateway,
    caller: VerifiedCaller,
) -> Response:
    """403 `email_not_verified` until the account's email is verified (docs/accounts.md)."""
    return await _to_orders(gateway, request, caller)


@router.get("", summary="My orders", response_model=None, responses=answers(200, OrderList))
async def list_orders(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_orders(gateway, request, caller)


@router.get("/{order_id}", summary="One of my orders", response_model=None, responses=answers(200, Order))
async def read_order(order_id: UUID, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_orders(gateway, request, caller)


@router.post("/{order_id}/cancel", summary="Cancel an order", response_model=None, responses=answers(200, Order))
async def cancel_order(order_id: UUID, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_orders(gateway, request, caller)
