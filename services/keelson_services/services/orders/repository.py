"""The orders tables. Every query binds its values as parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from keelson_services.contracts.orders import Order, OrderItem
from keelson_services.db import Connection, Database
from keelson_services.services.orders.states import OrderStatus, check


def order_of(row: dict[str, Any]) -> Order:
    return Order.model_validate(row)


class OrderRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, conn: Connection, *, user_id: str, key: str, items: Sequence[OrderItem], currency: str
    ) -> Order | None:
        """A new pending order of priced `items`; None when this user's `key` already made one."""
        total = sum(item.quantity * item.unit_price_cents for item in items)
        cursor = await conn.execute(
            """
            INSERT INTO orders (user_id, idempotency_key, currency, total_cents, items)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (user_id, idempotency_key) DO NOTHING
            RETURNING *
            """,
            [user_id, key, currency, total, Jsonb([item.model_dump() for item in items])],
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        await self._record(conn, row["id"], None, OrderStatus.PENDING, "created")
        return order_of(row)

    async def by_key(self, conn: Connection, *, user_id: str, key: str) -> Order | None:
        cursor = await conn.execute("SELECT * FROM orders WHERE user_id = %s AND idempotency_key = %s", [user_id, key])
        row = await cursor.fetchone()
        return order_of(row) if row else None

    async def get(self, order_id: UUID, *, user_id: str | None = None) -> Order | None:
        """The order; with `user_id`, only if it is that user's."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM orders WHERE id = %s AND (%s::text IS NULL OR user_id = %s)",
                [order_id, user_id, user_id],
            )
            row = await cursor.fetchone()
        return order_of(row) if row else None

    async def lock(self, conn: Connection, order_id: UUID) -> tuple[Order, str] | None:
        """The order, locked for the rest of `conn`'s transaction, and its owner."""
        cursor = await conn.execute("SELECT * FROM orders WHERE id = %s FOR UPDATE", [order_id])
        row = await cursor.fetchone()
        return (order_of(row), row["user_id"]) if row else None

    async def owner(self, order_id: UUID) -> str:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT user_id FROM orders WHERE id = %s", [order_id])
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"no order {order_id}")
        return str(row["user_id"])

    async def stalled(self, *, older_than_seconds: float, limit: int) -> list[UUID]:
        """Pending orders untouched for `older_than_seconds` whose next resume is due, the least
        recently tried first (an order never tried is due from its last update)."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT id FROM orders
                WHERE status = 'pending' AND updated_at < now() - make_interval(secs => %s)
                  AND coalesce(next_resume_at, updated_at) <= now()
                ORDER BY coalesce(next_resume_at, updated_at) LIMIT %s
                """,
                [older_than_seconds, limit],
            )
            return [row["id"] for row in await cursor.fetchall()]

    async def resume_failed(self, order_id: UUID, *, first_delay_seconds: float, max_delay_seconds: float) -> None:
        """Put off the next resume of an order whose resume got no verdict: first_delay, doubling
        with every failed attempt, at most max_delay."""
        async with self.db.connection() as conn:
            await conn.execute(
                """
                UPDATE orders SET resume_attempts = resume_attempts + 1,
                    next_resume_at = now() + make_interval(
                        secs => least(%s * power(2, least(resume_attempts, 30)), %s))
                WHERE id = %s AND status = 'pending'
                """,
                [first_delay_seconds, max_delay_seconds, order_id],
            )

    async def refund_attempts(self, order_id: UUID) -> int:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT refund_attempts FROM orders WHERE id = %s", [order_id])
            row = await cursor.fetchone()
            return int(row["refund_attempts"]) if row is not None else 0

    async def refund_declined(self, order_id: UUID, attempt: int) -> None:
        """Move on to the next attempt's key, once per declined attempt (concurrent cancels that
        saw the same decline count it once)."""
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE orders SET refund_attempts = %s WHERE id = %s AND refund_attempts = %s",
                [attempt + 1, order_id, attempt],
            )

    async def page(self, *, user_id: str, limit: int, offset: int) -> list[Order]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM orders WHERE user_id = %s ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                [user_id, limit, offset],
            )
            return [order_of(r) for r in await cursor.fetchall()]

    async def move(self, conn: Connection, order: Order, to: OrderStatus, *, cause: str, **changes: Any) -> Order:
        """Apply a transition the state machine allows (`InvalidTransitionError` otherwise),
        with column `changes`, to an order locked in `conn`'s transaction."""
        check(order.status, to)
        columns = {"status": str(to), **changes}
        assignments = ", ".join(f"{name} = %s" for name in columns)  # names are ours, never input
        cursor = await conn.execute(
            f"UPDATE orders SET {assignments}, updated_at = now() WHERE id = %s RETURNING *",
            [*columns.values(), order.id],
        )
        row = await cursor.fetchone()
        assert row is not None
        await self._record(conn, order.id, OrderStatus(order.status), to, cause)
        return order_of(row)

    async def update(self, conn: Connection, order_id: UUID, **changes: Any) -> Order:
        """Change columns other than the status (which only `move` changes)."""
        assignments = ", ".join(f"{name} = %s" for name in changes)
        cursor = await conn.execute(
            f"UPDATE orders SET {assignments}, updated_at = now() WHERE id = %s RETURNING *",
            [*changes.values(), order_id],
        )
        row = await cursor.fetchone()
        assert row is not None
        return order_of(row)

    async def _record(
        self, conn: Connection, order_id: UUID, from_status: OrderStatus | None, to: OrderStatus, cause: str
    ) -> None:
        await conn.execute(
            "INSERT INTO order_transitions (order_id, from_status, to_status, cause) VALUES (%s, %s, %s, %s)",
            [order_id, str(from_status) if from_status else None, str(to), cause],
        )

    async def erase_customer(self, user_id: str) -> int:
        """Unlink a deleted account's orders from the person; how many there were. What accounting
        needs stays (amounts, currency, items and SKUs, dates, payment ids, transitions); what
        tied them to the person goes: the user id (each order gets one of its own, so nothing
        groups them either), the client's Idempotency-Keys and their stored answers, and the
        published events about them still kept in the outbox. Idempotent: a second run finds
        nothing left."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                UPDATE orders SET user_id = 'erased:' || id::text, idempotency_key = id::text, erased_at = now(),
                    updated_at = now()
                WHERE user_id = %s
                """,
                [user_id],
            )
            erased = cursor.rowcount
            # Scopes end in the customer's id (`orders.create:<user id>`).
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE right(scope, length(%s) + 1) = ':' || %s", [user_id, user_id]
            )
            await conn.execute("DELETE FROM outbox WHERE published_at IS NOT NULL AND data->>'user_id' = %s", [user_id])
        return erased

    async def seen(self, event_id: str) -> bool:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM processed_events WHERE event_id = %s", [event_id])
            return await cursor.fetchone() is not None

    async def mark_seen(self, event_id: str, event_type: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO processed_events (event_id, event_type) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [event_id, event_type],
            )
