"""The order state machine: only the designed transitions, and which cancellations refund."""

from __future__ import annotations

import itertools

import pytest

from keelson_services.services.orders.states import (
    FINAL,
    InvalidTransitionError,
    OrderStatus,
    can,
    cancelling_refunds,
    check,
)

ALLOWED = {
    ("pending", "paid"),
    ("pending", "payment_failed"),
    ("pending", "cancelled"),
    ("paid", "cancelled"),
    ("paid", "shipped"),
    ("shipped", "delivered"),
}


@pytest.mark.parametrize(("current", "wanted"), list(itertools.product(list(OrderStatus), repeat=2)))
def test_exactly_the_designed_transitions_are_allowed(current: OrderStatus, wanted: OrderStatus) -> None:
    allowed = (str(current), str(wanted)) in ALLOWED
    assert can(current, wanted) is allowed
    if allowed:
        assert check(current, wanted) is wanted
    else:
        with pytest.raises(InvalidTransitionError) as refused:
            check(current, wanted)
        assert refused.value.status_code == 409 and refused.value.code == "invalid_transition"
        assert refused.value.details == {"status": str(current), "requested": str(wanted)}


def test_payment_failed_cancelled_and_delivered_are_final_and_only_a_paid_order_is_refunded() -> None:
    assert {OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED, OrderStatus.DELIVERED} == FINAL
    assert [s for s in OrderStatus if cancelling_refunds(s)] == [OrderStatus.PAID]
    assert can("pending", "paid") and not can("paid", "pending")  # plain strings, as stored, work too
