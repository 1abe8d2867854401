"""Typed dependencies of the orders service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from keelson_services.services.orders.components import OrdersComponents


def components(request: Request) -> OrdersComponents:
    found: OrdersComponents = request.app.state.orders
    return found


Components = Annotated[OrdersComponents, Depends(components)]
IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Required: one key per order attempt.")
]
