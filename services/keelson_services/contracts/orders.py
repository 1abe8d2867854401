"""Bodies of the orders part of the public API (`/orders`), as the issue states it: items with
sku, quantity and unit price in cents, and a currency; the answer is the order with its id,
status and total. The orders service implements these and may extend them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
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


class Order(BaseModel):
    id: UUID
    status: str = Field(examples=["pending", "paid", "cancelled"])
    items: list[OrderItem]
    currency: str
    total_cents: int
    created_at: datetime


class OrderList(BaseModel):
    items: list[Order]
