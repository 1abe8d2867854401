"""What happens to an order: creation with its synchronous payment, settlement by payments'
verdict (from the answer or from the payment event, whichever comes first), and cancellation.

Every change is one transaction that locks the order, asks the state machine, moves the stock
of its items (`catalogue.py`: reserved when placed, committed when paid, released when it fails or
is cancelled) and writes the event announcing it to the outbox (`order.created`, `order.paid`,
`order.cancelled`, `order.shipped`, `order.delivered`), so stock and events change exactly with
the changes that committed. Settling is idempotent: the verdict of a payment applied twice
(answer and event, or a redelivered event) changes the order once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from keelson_services.contracts.orders import CreateOrderRequest, Order
from keelson_services.db import Database
from keelson_services.errors import ApiError
from keelson_services.events import Outbox
from keelson_services.services.orders.catalogue import Catalogue
from keelson_services.services.orders.payments_client import PaymentsClient, RefundDeclinedError
from keelson_services.services.orders.repository import OrderRepository
from keelson_services.services.orders.states import OrderStatus, cancelling_refunds, check

log = logging.getLogger("keelson.orders")


@dataclass(frozen=True)
class Verdict:
    """Payments' verdict on an order's charge, from its answer or its event."""

    payment_id: UUID
    succeeded: bool
    amount_cents: int
    currency: str
    failure_code: str | None = None


def _event(order: Order, user_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "user_id": user_id,
        "status": order.status,
        "currency": order.currency,
        "total_cents": order.total_cents,
        **extra,
    }


class OrderFlows:
    def __init__(
        self, db: Database, orders: OrderRepository, catalogue: Catalogue, payments: PaymentsClient, outbox: Outbox
    ) -> None:
        self.db = db
        self.orders = orders
        self.catalogue = catalogue
        self.payments = payments
        self.outbox = outbox

    async def create(self, *, user_id: str, key: str, body: CreateOrderRequest) -> Order:
        """Create the order, priced from the catalogue with its stock reserved (or find the one
        an earlier run of this key made), and pay for it. An unknown SKU is a 422 and stock short
        of a quantity a 409 `out_of_stock`: nothing is created then.
        A payment that gets no verdict raises (503/504): the order stays pending, and a retry with
        the same key, or payments' event, settles it. While payments' circuit is open nothing is
        created: the request fails fast."""
        self.payments.check_available()
        async with self.db.connection() as conn:
            order = await self.orders.by_key(conn, user_id=user_id, key=key)
            if order is None:
                items, currency = await self.catalogue.reserve(conn, body.items, currency=body.currency)
                order = await self.orders.create(conn, user_id=user_id, key=key, items=items, currency=currency)
                if order is None:  # a run of the same key made it meanwhile: keep its reservation only
                    await conn.rollback()
                    order = await self.orders.by_key(conn, user_id=user_id, key=key)
                    assert order is not None
                else:
                    data = _event(order, user_id, items=[item.model_dump() for item in order.items])
                    await self.outbox.add(conn, "order.created", data, key=str(order.id))
        if order.status != "pending":
            return order
        try:
            return await self._pay(order, user_id, cause="payment answer")
        except ApiError as exc:
            # Pending: a retry with the same key resumes it, and so does the resumer in time.
            exc.details.setdefault("order_id", str(order.id))
            exc.details.setdefault("order_status", "pending")
            raise

    async def resume(self, order_id: UUID) -> Order | None:
        """Pay a pending order whose creation got no verdict (its request died with the service,
        or payments did) and whose client never came back: the same charge, under the same key,
        so payments finishes or replays the one charge and never makes a second. None when the
        order is gone; the order as it was when it is no longer pending."""
        order = await self.orders.get(order_id)
        if order is None or order.status != "pending":
            return order
        user_id = await self.orders.owner(order_id)
        return await self._pay(order, user_id, cause="payment resumed")

    async def _pay(self, order: Order, user_id: str, *, cause: str) -> Order:
        payment = await self.payments.charge(
            order_id=order.id, user_id=user_id, amount_cents=order.total_cents, currency=order.currency
        )
        verdict = Verdict(
            payment.id,
            payment.status != "failed",
            payment.amount_cents,
            payment.currency,
            payment.failure_code,
        )
        return await self.settle(order.id, verdict, cause=cause)

    async def settle(self, order_id: UUID, verdict: Verdict, *, cause: str) -> Order:
        """Apply payments' verdict. A success for an order cancelled meanwhile is refunded."""
        async with self.db.connection() as conn:
            locked = await self.orders.lock(conn, order_id)
            if locked is None:
                raise LookupError(f"no order {order_id}")
            order, user_id = locked
            if (verdict.amount_cents, verdict.currency) != (order.total_cents, order.currency):
                log.error("payment %s does not match order %s; ignored", verdict.payment_id, order.id)
                return order
            if order.status == "pending" and verdict.succeeded:
                order = await self.orders.move(
                    conn, order, OrderStatus.PAID, cause=cause, payment_id=verdict.payment_id
                )
                await self.catalogue.commit(conn, order.items)
                data = _event(order, user_id, payment_id=str(verdict.payment_id))
                await self.outbox.add(conn, "order.paid", data, key=str(order.id))
                return order
            if order.status == "pending":
                await self.catalogue.release(conn, order.items)
                return await self.orders.move(
                    conn, order, OrderStatus.PAYMENT_FAILED, cause=cause,
                    payment_id=verdict.payment_id, failure_code=verdict.failure_code,
                )  # fmt: skip
            late = order.status == "cancelled" and verdict.succeeded and order.refunded_cents == 0
            if late and order.payment_id is None:
                order = await self.orders.update(conn, order.id, payment_id=verdict.payment_id)
        if late:
            # The customer cancelled while the charge was under way: give the money back.
            return await self._refund(order, user_id, reason="order cancelled before its payment completed")
        return order

    async def cancel(self, *, user_id: str, order_id: UUID) -> Order:
        order = await self.orders.get(order_id, user_id=user_id)
        if order is None:
            raise ApiError(404, "not_found", "No such order")
        if order.status == "cancelled":
            return order  # cancelling twice is no error
        check(order.status, OrderStatus.CANCELLED)
        if cancelling_refunds(order.status):
            return await self._refund(order, user_id, reason="order cancelled")
        async with self.db.connection() as conn:
            locked = await self.orders.lock(conn, order_id)
            assert locked is not None
            current, _ = locked
            if current.status == "pending":
                cancelled = await self.orders.move(conn, current, OrderStatus.CANCELLED, cause="cancelled by customer")
                await self.catalogue.release(conn, cancelled.items)
                await self.outbox.add(
                    conn, "order.cancelled", _event(cancelled, user_id, refunded_cents=0), key=str(order_id)
                )
                return cancelled
        return await self.cancel(user_id=user_id, order_id=order_id)  # it was paid meanwhile: refund it

    async def fulfil(self, order_id: UUID, to: OrderStatus, *, admin_id: str) -> Order:
        """Ship a paid order, or deliver a shipped one (an admin's doing), announcing it with
        `order.shipped` / `order.delivered`. Asking again for the state it is in is no error."""
        async with self.db.connection() as conn:
            locked = await self.orders.lock(conn, order_id)
            if locked is None:
                raise ApiError(404, "not_found", "No such order")
            order, user_id = locked
            if order.status == to:
                return order
            moved = await self.orders.move(conn, order, to, cause=f"{to} by admin {admin_id}")
            await self.outbox.add(conn, f"order.{to}", _event(moved, user_id), key=str(order_id))
            return moved

    async def _refund(self, order: Order, user_id: str, *, reason: str) -> Order:
        """Refund the order's payment, then record it (cancelling a paid order, with its event)."""
        assert order.payment_id is not None
        attempt = await self.orders.refund_attempts(order.id)
        try:
            payment = await self.payments.refund(
                order_id=order.id, payment_id=order.payment_id, reason=reason, attempt=attempt
            )
        except RefundDeclinedError:
            # Payments replays a declined refund for its key for good: the next cancel asks
            # again under a new one, instead of meeting this refusal for ever.
            await self.orders.refund_declined(order.id, attempt)
            raise
        async with self.db.connection() as conn:
            locked = await self.orders.lock(conn, order.id)
            assert locked is not None
            current, _ = locked
            if current.status == "paid":
                cancelled = await self.orders.move(
                    conn, current, OrderStatus.CANCELLED, cause="cancelled by customer, refunded",
                    refunded_cents=payment.refunded_cents,
                )  # fmt: skip
                await self.catalogue.restock(conn, cancelled.items)
                data = _event(cancelled, user_id, refunded_cents=payment.refunded_cents)
                await self.outbox.add(conn, "order.cancelled", data, key=str(order.id))
                return cancelled
            if current.refunded_cents != payment.refunded_cents:
                return await self.orders.update(conn, order.id, refunded_cents=payment.refunded_cents)
            return current
