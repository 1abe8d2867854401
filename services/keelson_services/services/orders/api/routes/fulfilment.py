"""Fulfilment, admins only: `POST /api/v1/admin/orders/{id}/ship` for a paid order and
`POST /api/v1/admin/orders/{id}/deliver` for a shipped one; any other state is 409
`invalid_transition`. Each change publishes `order.shipped` / `order.delivered`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from keelson_services.contracts.orders import Order
from keelson_services.deps import require_role
from keelson_services.identity import Identity
from keelson_services.services.orders.deps import Components
from keelson_services.services.orders.states import OrderStatus

router = APIRouter(prefix="/api/v1/admin/orders", tags=["admin"])
Admin = Annotated[Identity, Depends(require_role("admin"))]


@router.post("/{order_id}/ship", response_model=Order, summary="Mark a paid order shipped (admin)")
async def ship_order(order_id: UUID, admin: Admin, parts: Components) -> Order:
    return await parts.flows.fulfil(order_id, OrderStatus.SHIPPED, admin_id=admin.user_id)


@router.post("/{order_id}/deliver", response_model=Order, summary="Mark a shipped order delivered (admin)")
async def deliver_order(order_id: UUID, admin: Admin, parts: Components) -> Order:
    return await parts.flows.fulfil(order_id, OrderStatus.DELIVERED, admin_id=admin.user_id)
