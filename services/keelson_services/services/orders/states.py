"""The order state machine. Pure: the routes and event handlers ask it before any change.

    pending ──▶ paid ──▶ shipped ──▶ delivered
       │  │       └────▶ cancelled (refunded)
       │  └───▶ payment_failed
       └──────▶ cancelled

An order is `pending` until payments' verdict. `paid` and `payment_failed` follow from that
verdict (from the synchronous answer or, if that was lost, from the payment event), `cancelled`
from the customer; a paid order is refunded when cancelled. An admin ships a paid order and then
marks it delivered; once shipped it can no longer be cancelled (the goods are on their way: a
return is another process). `payment_failed`, `cancelled` and `delivered` are final.
"""

from __future__ import annotations

import enum

from keelson_services.errors import ApiError


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"
    DELIVERED = "delivered"


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.CANCELLED, OrderStatus.SHIPPED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.PAYMENT_FAILED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.DELIVERED: frozenset(),
}
FINAL = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)


class InvalidTransitionError(ApiError):
    def __init__(self, current: OrderStatus, wanted: OrderStatus) -> None:
        super().__init__(
            409,
            "invalid_transition",
            f"A {current} order cannot become {wanted}",
            details={"status": str(current), "requested": str(wanted)},
        )
        self.current = current
        self.wanted = wanted


def can(current: OrderStatus | str, wanted: OrderStatus | str) -> bool:
    return OrderStatus(wanted) in TRANSITIONS[OrderStatus(current)]


def check(current: OrderStatus | str, wanted: OrderStatus | str) -> OrderStatus:
    """`wanted`, if `current` may become it; `InvalidTransitionError` (409) otherwise."""
    if not can(current, wanted):
        raise InvalidTransitionError(OrderStatus(current), OrderStatus(wanted))
    return OrderStatus(wanted)


def cancelling_refunds(current: OrderStatus | str) -> bool:
    """Whether cancelling an order in `current` must refund its payment."""
    return OrderStatus(current) is OrderStatus.PAID
