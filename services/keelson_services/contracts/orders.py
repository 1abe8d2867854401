"""Bodies of the orders part of the public API (`/orders`), as the issue states it: items with
sku, quantity and unit price in cents, and a currency; the answer is the order with its id,
status and total. The orders service implements these and may extend them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keelson_services.contracts.text import Sku

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217 code.")]


MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE_CENTS = 100, 1000, 100_000_000
# The largest total an order can have. Payments charges up to this (`contracts.payments`), so that
# every order accepted here can be paid.
MAX_TOTAL_CENTS = MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_CENTS


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
    unit_price_cents: Annotated[int, Field(ge=0, le=MAX_UNIT_PRICE_CENTS, description="0 for a free item.")]


class CreateOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[
        list[OrderItem],
        Field(
            min_length=1,
            max_length=MAX_ITEMS,
            description="At least one item has a price: an order is paid, and a charge is never of 0.",
            # The validator's rule, in the document too.
            json_schema_extra={"contains": {"properties": {"unit_price_cents": {"minimum": 1}}}},
        ),
    ]
    currency: Currency

    @field_validator("items")
    @classmethod
    def _costs_something(cls, items: list[OrderItem]) -> list[OrderItem]:
        # A total of 0 cannot be charged (payments refuses it), so such an order could never be
        # paid: it used to be stored and then fail with a 500 when its payment was refused.
        if not any(item.unit_price_cents for item in items):
            raise ValueError("an order needs at least one item with a price")
        return items


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
