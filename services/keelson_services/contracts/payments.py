"""Bodies of the payments service's API. Not public (the gateway does not route to payments):
orders calls it, and shares these models with it so that the two cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from keelson_services.contracts.orders import MAX_TOTAL_CENTS, Currency

PaymentStatus = Literal["processing", "succeeded", "failed", "refunded", "partially_refunded"]
# A payment in one of these states took money that may be refunded.
REFUNDABLE: frozenset[str] = frozenset({"succeeded", "partially_refunded"})
# Any order total: orders charges every order it accepts (the largest used to be refused, a 500).
MAX_AMOUNT_CENTS = MAX_TOTAL_CENTS


class ChargeRequest(BaseModel):
    """Charge `amount_cents` for an order. Requires an `Idempotency-Key`: a retry with the same key
    and body replays the first answer and never charges twice."""

    model_config = ConfigDict(extra="forbid")

    order_id: UUID
    customer_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\u0000]*$")]
    amount_cents: Annotated[int, Field(ge=1, le=MAX_AMOUNT_CENTS)]
    currency: Currency
    description: Annotated[str, Field(max_length=500, pattern=r"^[^\u0000]*$")] | None = None


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: Annotated[int, Field(ge=1, le=MAX_AMOUNT_CENTS)] | None = Field(
        None, description="What to refund; everything not yet refunded when absent."
    )
    reason: Annotated[str, Field(max_length=500, pattern=r"^[^\u0000]*$")] | None = None


class Refund(BaseModel):
    id: UUID
    amount_cents: int
    status: Literal["pending", "succeeded", "failed"]
    provider_reference: str | None
    created_at: datetime


class Payment(BaseModel):
    id: UUID
    order_id: UUID
    customer_id: str
    status: PaymentStatus
    amount_cents: int
    currency: str
    refunded_cents: int
    provider_reference: str | None
    failure_code: str | None = None
    failure_message: str | None = None
    refunds: list[Refund] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class PaymentList(BaseModel):
    items: list[Payment]
