"""Bodies of the orders part of the public API (`/orders`): a customer orders SKUs and
quantities, the orders service prices them from its catalogue (`contracts.catalogue`); the answer
is the order with its priced items, id, status and total."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from keelson_services.contracts.text import Sku

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217 code.")]


def _not_a_boolean(value: object) -> object:
    # JSON's true is no 1 (pydantic's lax mode would take it, the document's integer does not);
    # strict mode would refuse 2.0, which the document's integer allows.
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not true or false")
    return value


NOT_A_BOOLEAN = BeforeValidator(_not_a_boolean)

MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE_CENTS = 100, 1000, 100_000_000
# The largest total an order can have. Payments charges up to this (`contracts.payments`), so that
# every order accepted here can be paid.
MAX_TOTAL_CENTS = MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_CENTS


class OrderLine(BaseModel):
    """What a customer orders: a product and how many. The price is the catalogue's, never the
    client's: a line with `unit_price_cents` (or any other field) is refused with 422."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), NOT_A_BOOLEAN]


class OrderItem(BaseModel):
    """A line of a placed order, priced from the catalogue when the order was placed."""

    sku: Sku
    name: str = ""
    quantity: int
    unit_price_cents: int


class CreateOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[
        list[OrderLine],
        Field(min_length=1, max_length=MAX_ITEMS, description="Each SKU at most once."),
    ]
    currency: Currency | None = Field(
        None, description="Optional: the currency the client expects to pay in; 422 if the catalogue prices differ."
    )

    @field_validator("items")
    @classmethod
    def _each_sku_once(cls, items: list[OrderLine]) -> list[OrderLine]:
        seen: set[str] = set()
        for item in items:
            if item.sku in seen:
                raise ValueError(f"SKU {item.sku!r} is listed more than once; order it once with its quantity")
            seen.add(item.sku)
        return items


OrderStatus = Literal["pending", "paid", "payment_failed", "cancelled", "shipped", "delivered"]


class Order(BaseModel):
    id: UUID
    status: OrderStatus = Field(
        description="pending until the payment's verdict; then paid or payment_failed; cancelled on request "
        "(a paid order is refunded); a paid order is shipped, then delivered (an admin's doing), and a shipped "
        "one can no longer be cancelled."
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
