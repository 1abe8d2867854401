"""The catalogue's table: products, their prices and their stock. Every query binds its values.

Stock follows the order it is ordered by, each step in the transaction that moves the order:

    placed ─▶ reserved ─▶ committed (paid: the units leave the stock)
                  └─────▶ released  (payment failed, or cancelled while pending)
    committed ─▶ restocked (a paid order cancelled and refunded: the units come back)

A reservation is one `UPDATE ... WHERE stock - reserved >= quantity`: PostgreSQL serialises
concurrent ones on the product's row lock and re-checks the condition on the row as the winner
left it, so no interleaving sells a unit twice (and the table's CHECK would refuse it anyway).
Products are locked in SKU order, so two orders of the same products never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keelson_services.contracts.catalogue import AdminProduct, CreateProductRequest, Product, UpdateProductRequest
from keelson_services.contracts.orders import OrderItem, OrderLine
from keelson_services.db import Connection, Database
from keelson_services.errors import ApiError

_COLUMNS = "sku, name, price_cents, currency, stock, reserved, stock - reserved AS available, updated_at"


class OutOfStockError(ApiError):
    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(
            409,
            "out_of_stock",
            f"Only {available} of {sku} can be ordered now, not {requested}",
            details={"sku": sku, "requested": requested, "available": available},
        )


def _invalid(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(422, code, message, details=details)


class Catalogue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, *, limit: int, offset: int) -> tuple[list[Product], int]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM products ORDER BY sku LIMIT %s OFFSET %s",
                [limit, offset],
            )
            rows = await cursor.fetchall()
            if rows:
                return [Product.model_validate(r) for r in rows], int(rows[0]["total"])
            cursor = await conn.execute("SELECT count(*) AS total FROM products")
            counted = await cursor.fetchone()
        return [], int(counted["total"]) if counted else 0

    async def get(self, sku: str) -> AdminProduct | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(f"SELECT {_COLUMNS} FROM products WHERE sku = %s", [sku])
            row = await cursor.fetchone()
        return AdminProduct.model_validate(row) if row else None

    async def create(self, body: CreateProductRequest) -> AdminProduct:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"""
                INSERT INTO products (sku, name, price_cents, currency, stock) VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (sku) DO NOTHING RETURNING {_COLUMNS}
                """,
                [body.sku, body.name, body.price_cents, body.currency, body.stock],
            )
            row = await cursor.fetchone()
        if row is None:
            raise ApiError(409, "conflict", f"A product with SKU {body.sku} exists already", details={"sku": body.sku})
        return AdminProduct.model_validate(row)

    async def update(self, sku: str, body: UpdateProductRequest) -> AdminProduct:
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        async with self.db.connection() as conn:
            cursor = await conn.execute(f"SELECT {_COLUMNS} FROM products WHERE sku = %s FOR UPDATE", [sku])
            row = await cursor.fetchone()
            if row is None:
                raise ApiError(404, "not_found", f"No product with SKU {sku}", details={"sku": sku})
            if changes.get("stock", row["stock"]) < row["reserved"]:
                raise ApiError(
                    409,
                    "stock_reserved",
                    f"{row['reserved']} units of {sku} are reserved by pending orders: stock cannot go below that",
                    details={"sku": sku, "reserved": row["reserved"]},
                )
            if not changes:
                return AdminProduct.model_validate(row)
            assignments = ", ".join(f"{name} = %s" for name in changes)  # names are the model's, never input
            cursor = await conn.execute(
                f"UPDATE products SET {assignments}, updated_at = now() WHERE sku = %s RETURNING {_COLUMNS}",
                [*changes.values(), sku],
            )
            updated = await cursor.fetchone()
        assert updated is not None
        return AdminProduct.model_validate(updated)

    async def reserve(
        self, conn: Connection, lines: Sequence[OrderLine], *, currency: str | None
    ) -> tuple[list[OrderItem], str]:
        """Price `lines` from the catalogue and reserve their units, in `conn`'s transaction:
        the priced items (in the order given) and their currency. 422 for an unknown SKU, a
        currency other than `currency` or a total of 0; 409 `out_of_stock`. The caller's
        transaction must roll back on any of these (raising out of it does)."""
        skus = [line.sku for line in lines]
        cursor = await conn.execute("SELECT sku, currency FROM products WHERE sku = ANY(%s)", [skus])
        known = {row["sku"]: row["currency"] for row in await cursor.fetchall()}
        unknown = [{"index": i, "sku": sku} for i, sku in enumerate(skus) if sku not in known]
        if unknown:
            names = ", ".join(sku for sku in skus if sku not in known)
            raise _invalid("unknown_sku", f"No product with SKU {names}", items=unknown)
        currencies = set(known.values())
        if len(currencies) > 1:
            raise _invalid("mixed_currencies", "An order's items must all be priced in one currency",
                           currencies=sorted(currencies))  # fmt: skip
        (priced_in,) = currencies
        if currency is not None and currency != priced_in:
            raise _invalid(
                "currency_mismatch", f"These items are priced in {priced_in}, not {currency}", currency=priced_in
            )
        priced: dict[str, OrderItem] = {}
        for line in sorted(lines, key=lambda line: line.sku):
            cursor = await conn.execute(
                """
                UPDATE products SET reserved = reserved + %s, updated_at = now()
                WHERE sku = %s AND stock - reserved >= %s
                RETURNING name, price_cents
                """,
                [line.quantity, line.sku, line.quantity],
            )
            row = await cursor.fetchone()
            if row is None:
                cursor = await conn.execute("SELECT stock - reserved AS available FROM products WHERE sku = %s",
                                            [line.sku])  # fmt: skip
                left = await cursor.fetchone()
                raise OutOfStockError(line.sku, line.quantity, int(left["available"]) if left else 0)
            priced[line.sku] = OrderItem(
                sku=line.sku, name=row["name"], quantity=line.quantity, unit_price_cents=row["price_cents"]
            )
        items = [priced[sku] for sku in skus]
        if not any(item.unit_price_cents for item in items):
            # Payments refuses a charge of 0, so such an order could never be paid.
            raise _invalid("nothing_to_pay", "An order needs at least one item with a price")
        return items, priced_in

    async def commit(self, conn: Connection, items: Sequence[OrderItem]) -> None:
        """The order is paid: its reserved units leave the stock."""
        await self._apply(conn, items, "stock = stock - %s, reserved = reserved - %s")

    async def release(self, conn: Connection, items: Sequence[OrderItem]) -> None:
        """The order will not be paid (payment failed, cancelled while pending): free its units."""
        await self._apply(conn, items, "reserved = reserved - %s", per_item=1)

    async def restock(self, conn: Connection, items: Sequence[OrderItem]) -> None:
        """A paid order was cancelled and refunded before anything shipped: its units come back."""
        await self._apply(conn, items, "stock = stock + %s", per_item=1)

    async def _apply(self, conn: Connection, items: Sequence[OrderItem], assignments: str, per_item: int = 2) -> None:
        for item in sorted(items, key=lambda item: item.sku):  # the reservation's lock order
            await conn.execute(
                f"UPDATE products SET {assignments}, updated_at = now() WHERE sku = %s",
                [*([item.quantity] * per_item), item.sku],
            )
