"""Charging and refunding: the provider call between two transactions, and the events.

A charge: the payment row is created `processing` (committed, so a crash mid-call leaves a trace),
the provider is asked with a key derived from the payment id (so asking again never charges
twice), then one transaction records the verdict and writes `payment.completed` or
`payment.failed` to the outbox: the event exists exactly when the verdict committed.

Run through `IdempotencyStore` by the routes: one run per Idempotency-Key at a time; a run after
a crash (the key's lease ended) finds the payment the first run created and finishes it.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from keelson_services.contracts.payments import REFUNDABLE, ChargeRequest, Payment, RefundRequest
from keelson_services.db import Database
from keelson_services.errors import ApiError
from keelson_services.events import Outbox
from keelson_services.services.payments.provider import PaymentProvider
from keelson_services.services.payments.repository import PaymentRepository

log = logging.getLogger("keelson.payments")


def event_data(payment: Payment) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payment_id": str(payment.id),
        "order_id": str(payment.order_id),
        "user_id": payment.customer_id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "status": payment.status,
    }
    if payment.status == "failed":
        data |= {"failure_code": payment.failure_code, "failure_message": payment.failure_message}
    return data


class Charges:
    def __init__(self, db: Database, payments: PaymentRepository, provider: PaymentProvider, outbox: Outbox) -> None:
        self.db = db
        self.payments = payments
        self.provider = provider
        self.outbox = outbox

    async def charge(self, key: str, request: ChargeRequest) -> Payment:
        payment = await self.payments.start(key, request)
        if payment.status != "processing":
            return payment  # an earlier run finished it and crashed before storing its answer
        result = await self.provider.charge(
            key=f"charge:{payment.id}",
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            customer_id=payment.customer_id,
        )
        async with self.db.connection() as conn:
            finished = await self.payments.finish(conn, payment.id, result)
            if finished is not None:
                event = "payment.completed" if finished.status == "succeeded" else "payment.failed"
                await self.outbox.add(conn, event, event_data(finished), key=str(finished.order_id))
                log.info("payment %s %s", finished.id, finished.status, extra={"order_id": str(finished.order_id)})
        return finished or await self._get(payment.id)

    async def refund(self, payment_id: UUID, key: str, request: RefundRequest) -> Payment:
        refund = await self.payments.refund_by_key(key)
        if refund is None:
            refund = await self._reserve(payment_id, key, request)
        elif refund["payment_id"] != payment_id:
            raise ApiError(422, "idempotency_key_reused", "This Idempotency-Key was used for another payment")
        if refund["status"] == "pending":
            payment = await self._get(payment_id)
            assert payment.provider_reference is not None  # refundable payments were charged
            result = await self.provider.refund(
                key=f"refund:{refund['id']}",
                charge_reference=payment.provider_reference,
                amount_cents=refund["amount_cents"],
            )
            async with self.db.connection() as conn:
                cursor = await conn.execute(
                    """
                    UPDATE refunds SET status = %s, provider_reference = %s, updated_at = now()
                    WHERE id = %s AND status = 'pending' RETURNING amount_cents
                    """,
                    ["succeeded" if result.succeeded else "failed", result.reference, refund["id"]],
                )
                done = await cursor.fetchone()
                if done is not None and result.succeeded:
                    await conn.execute(
                        """
                        UPDATE payments SET refunded_cents = refunded_cents + %s,
                            status = CASE WHEN refunded_cents + %s >= amount_cents
                                          THEN 'refunded' ELSE 'partially_refunded' END,
                            updated_at = now()
                        WHERE id = %s
                        """,
                        [done["amount_cents"], done["amount_cents"], payment_id],
                    )
            refund = {**refund, "status": "succeeded" if result.succeeded else "failed"}
        if refund["status"] == "failed":
            raise ApiError(502, "refund_failed", "The payment provider refused the refund")
        return await self._get(payment_id)

    async def _reserve(self, payment_id: UUID, key: str, request: RefundRequest) -> dict[str, Any]:
        """Create the pending refund, with the payment locked so refunds never exceed the charge."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT status, amount_cents, refunded_cents FROM payments WHERE id = %s FOR UPDATE", [payment_id]
            )
            payment = await cursor.fetchone()
            if payment is None:
                raise ApiError(404, "not_found", "No such payment")
            if payment["status"] not in REFUNDABLE:
                raise ApiError(
                    409, "not_refundable", f"A {payment['status']} payment cannot be refunded",
                    details={"status": payment["status"]},
                )  # fmt: skip
            cursor = await conn.execute(
                "SELECT coalesce(sum(amount_cents), 0)::bigint AS n FROM refunds"
                " WHERE payment_id = %s AND status = 'pending'",
                [payment_id],
            )
            pending = await cursor.fetchone()
            remaining = payment["amount_cents"] - payment["refunded_cents"] - (pending["n"] if pending else 0)
            amount = request.amount_cents if request.amount_cents is not None else remaining
            if remaining <= 0:
                raise ApiError(409, "not_refundable", "Nothing of this payment is left to refund")
            if amount > remaining:
                raise ApiError(
                    422, "refund_too_large", "The refund exceeds what is left of the payment",
                    details={"refundable_cents": remaining},
                )  # fmt: skip
            cursor = await conn.execute(
                """
                INSERT INTO refunds (payment_id, idempotency_key, amount_cents, reason)
                VALUES (%s, %s, %s, %s) RETURNING *
                """,
                [payment_id, key, amount, request.reason],
            )
            row = await cursor.fetchone()
        assert row is not None
        return row

    async def _get(self, payment_id: UUID) -> Payment:
        payment = await self.payments.get(payment_id)
        if payment is None:
            raise ApiError(404, "not_found", "No such payment")
        return payment
