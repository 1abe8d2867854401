"""Fulfilment in the public API, admins only, forwarded to the service exposed at `/orders`."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from keelson_services.contracts.orders import Order
from keelson_services.services.gateway.api.routes.documented import answers
from keelson_services.services.gateway.deps import Admin, Gateway
from keelson_services.services.gateway.proxy import forward

AREA = "/orders"
router = APIRouter(prefix="/api/v1/admin/orders", tags=["admin"])


async def _to_orders(gateway: Gateway, request: Request, caller: Admin) -> Response:
    return await forward(gateway.client, request, service=gateway.routes.for_area(AREA).service, caller=caller)


@router.post(
    "/{order_id}/ship", summary="Mark a paid order shipped (admin)", response_model=None, responses=answers(200, Order)
)
async def ship_order(order_id: UUID, request: Request, gateway: Gateway, caller: Admin) -> Response:
    return await _to_orders(gateway, request, caller)


@router.post(
    "/{order_id}/deliver", summary="Mark a shipped order delivered (admin)", response_model=None,
    responses=answers(200, Order),
)  # fmt: skip
async def deliver_order(order_id: UUID, request: Request, gateway: Gateway, caller: Admin) -> Response:
    return await _to_orders(gateway, request, caller)
