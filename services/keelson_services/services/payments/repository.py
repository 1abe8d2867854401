"""The payments and refunds tables. Every query binds its values as parameters."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from keelson_services.contracts.payments import ChargeRequest, Payment
from keelson_services.db import Connection, Database
from keelson_services.services.payments.provider import ProviderResult

_REFUNDS = """
    coalesce((SELECT json_agg(json_build_object(
        'id', r.id, 'amount_cents', r.amount_cents, 'status', r.status,
        'provider_reference', r.provider_reference, 'created_at', r.created_at) ORDER BY r.created_at, r.id)
      FROM refunds r WHERE r.payment_id = p.id), '[]') AS refunds
"""
_SELECT = f"SELECT p.*, {_REFUNDS} FROM payments p"


def payment_of(row: dict[str, Any]) -> Payment:
    return Payment.model_validate(row)


class PaymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, payment_id: UUID, conn: Connection | None = None) -> Payment | None:
        if conn is None:
            async with self.db.connection() as own:
                return await self.get(payment_id, own)
        cursor = await conn.execute(f"{_SELECT} WHERE p.id = %s", [payment_id])
        row = await cursor.fetchone()
        return payment_of(row) if row else None

    async def by_key(self, key: str) -> Payment | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(f"{_SELECT} WHERE p.idempotency_key = %s", [key])
            row = await cursor.fetchone()
        return payment_of(row) if row else None

    async def for_order(self, order_id: UUID) -> list[Payment]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(f"{_SELECT} WHERE p.order_id = %s ORDER BY p.created_at, p.id", [order_id])
            return [payment_of(r) for r in await cursor.fetchall()]

    async def start(self, key: str, request: ChargeRequest) -> Payment:
        """The payment of `key`: created as `processing`, or the one an earlier run created."""
        async with self.db.connection() as conn:
            await conn.execute(
                """
                INSERT INTO payments (idempotency_key, order_id, customer_id, amount_cents, currency, description)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (idempotency_key) DO NOTHING
                """,
                [
                    key,
                    request.order_id,
                    request.customer_id,
                    request.amount_cents,
                    request.currency,
                    request.description,
                ],
            )
            cursor = await conn.execute(f"{_SELECT} WHERE p.idempotency_key = %s", [key])
            row = await cursor.fetchone()
        assert row is not None
        return payment_of(row)

    async def finish(self, conn: Connection, payment_id: UUID, result: ProviderResult) -> Payment | None:
        """Record the provider's verdict on a `processing` payment; None if it was recorded already."""
        cursor = await conn.execute(
            """
            UPDATE payments
            SET status = %s, provider_reference = %s, failure_code = %s, failure_message = %s, updated_at = now()
            WHERE id = %s AND status = 'processing'
            RETURNING id
            """,
            [
                "succeeded" if result.succeeded else "failed",
                result.reference,
                result.failure_code,
                result.failure_message,
                payment_id,
            ],
        )
        if await cursor.fetchone() is None:
            return None
        return await self.get(payment_id, conn)

    async def refund_by_key(self, key: str) -> dict[str, Any] | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT * FROM refunds WHERE idempotency_key = %s", [key])
            return await cursor.fetchone()
