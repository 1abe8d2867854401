"""Bodies of the orders part of the public API (`/orders`), as the issue states it: items with
sku, quantity and unit price in cents, and a currency; the answer is the order with its id,
status and total. The orders service implements these and may extend them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from keelson_services.contracts.text import Sku

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217 code.")]


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=1000)]
    unit_price_cents: Annotated[int, Field(ge=0, le=100_000_000)]


class CreateOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[OrderItem], Field(min_length=1, max_length=100)]
    currency: Currency


OrderStatus = Literal["pending", "paid", "payment_failed", "cancelled"]


class Order(BaseModel):
    id: UUID
    status: OrderStatus = Field(
        description="pending until the payment's verdict; then paid or payment_failed; cancelled on request "
        "(a paid order is refunded)."
    )
    items: list[OrderItem]
    currency: str
    total_cents: int
    payment_id: UUID | None = Field(None, description="The payment that settled the order, once there is one.")
    refunded_cents: int = 0
    failure_code: str | None = Field(None, description="Why the payment failed, for payment_failed orders.")
    created_at: datetime
    updated_at: datetime | None = None


class OrderList(BaseModel):
    items: list[Order]
