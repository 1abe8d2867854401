"""Orders and payments together over real HTTP (payments served by uvicorn on a loopback port,
so it can be stopped and made to hang), each on its own PostgreSQL database: orders paid,
replayed, cancelled and refunded; the circuit breaker towards payments with short real settings;
and recovery without a second charge."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from e2e.svc_platform import Shop, wait_for
from e2e.svc_postgres import fresh_database
from keelson.devstack.ports import free_port
from keelson_services.contracts.payments import Payment
from keelson_services.messaging import Envelope, PermanentError
from keelson_services.services.orders.handlers import handlers
from keelson_services.services.orders.main import create_app as create_orders
from keelson_services.services.orders.payments_client import charge_key
from keelson_services.services.payments.charges import event_data
from keelson_services.services.payments.config import PaymentsConfig
from keelson_services.services.payments.main import create_app as create_payments

pytestmark = pytest.mark.postgres
ORDERS_URL = "http://orders.shop.svc:8080"
CUSTOMER = {"X-User-Id": "user-1", "X-User-Roles": "customer"}
ADMIN = {"X-User-Id": "admin-1", "X-User-Roles": "admin"}
ITEMS = [{"sku": "SKU-1", "quantity": 2}]  # 2 x 12.50 EUR at the catalogue's price
# Short real settings: a 0.5 s timeout, 3 failures open the breaker for 2 s; no retries, so that
# every order request is one attempt at payments.
TIMEOUT, OPEN_SECONDS = 0.5, 2.0


@asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[uvicorn.Server]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started or task.done(), within=30)
    assert server.started, "payments did not start"
    try:
        yield server
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def hanging(port: int) -> AsyncIterator[list[int]]:
    """A 'payments' that accepts connections and never answers; yields the connection count."""
    connections: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        yield connections
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Stack:
    orders: httpx.AsyncClient
    orders_uri: str
    payments_uri: str
    payments_port: int
    payments_app: Callable[..., FastAPI]  # a new payments process, as a restart makes one
    orders_app: FastAPI
    shop: Shop

    async def order(self, key: str, *, customer: dict[str, str] = CUSTOMER, **extra: Any) -> httpx.Response:
        body = {"items": ITEMS, "currency": "EUR"} | extra
        return await self.orders.post("/api/v1/orders", json=body, headers=customer | {"Idempotency-Key": key})

    async def add_product(self, sku: str, *, price_cents: int, stock: int, currency: str = "EUR") -> dict[str, Any]:
        product = {
            "sku": sku,
            "name": f"Product {sku}",
            "price_cents": price_cents,
            "currency": currency,
            "stock": stock,
        }
        added = await self.orders.post("/api/v1/admin/products", json=product, headers=ADMIN)
        assert added.status_code == 201, added.text
        body: dict[str, Any] = added.json()
        return body

    async def product(self, sku: str) -> dict[str, Any]:
        """The product as an admin sees it: stock, reserved and available."""
        (row,) = self.rows("SELECT stock, reserved FROM products WHERE sku = %s", sku)
        public = await self.orders.get(f"/api/v1/products/{sku}")
        assert public.status_code == 200, public.text
        return {"stock": row[0], "reserved": row[1], "available": public.json()["available"]}

    def charges(self) -> int:
        with psycopg.connect(self.payments_uri) as conn:
            row = conn.execute("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge'").fetchone()
        assert row is not None
        return int(row[0])

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.orders_uri) as conn:
            return conn.execute(query, params).fetchall()


@asynccontextmanager
async def stack(**payments_config: Any) -> AsyncIterator[Stack]:
    shop = Shop()
    port = free_port()
    with fresh_database("orders") as orders_uri, fresh_database("payments") as payments_uri:

        def payments_app(**overrides: Any) -> FastAPI:
            return create_payments(
                shop.settings("payments", database_uri=payments_uri),
                config=PaymentsConfig(**(payments_config | overrides)),
                configure_logs=False,
            )

        orders_app = create_orders(
            shop.settings(
                "orders",
                database_uri=orders_uri,
                http_timeout_seconds=TIMEOUT,
                breaker_open_seconds=OPEN_SECONDS,
                retry_max=0,
                service_urls={"payments": f"http://127.0.0.1:{port}"},
            ),
            configure_logs=False,
        )
        async with (
            orders_app.router.lifespan_context(orders_app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=orders_app),
                base_url=ORDERS_URL,
                headers=shop.caller_headers("gateway", "orders"),  # the tests call as the gateway does
            ) as orders,
        ):
            s = Stack(orders, orders_uri, payments_uri, port, payments_app, orders_app, shop)
            await s.add_product("SKU-1", price_cents=1250, stock=1000)
            yield s


async def test_an_order_is_paid_replayed_and_cancelled_with_a_refund() -> None:
    async with stack() as s, serve(s.payments_app(), s.payments_port):
        placed = await s.order("key-1")
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert (order["status"], order["total_cents"], order["currency"]) == ("paid", 2500, "EUR")
        assert placed.headers["location"] == f"/api/v1/orders/{order['id']}"

        replay = await s.order("key-1")
        assert replay.content == placed.content and replay.headers["idempotent-replayed"] == "true"
        reused = await s.order("key-1", currency="USD")
        assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
        other_user = await s.order("key-1", customer={"X-User-Id": "user-2"})
        assert other_user.status_code == 201 and other_user.json()["id"] != order["id"]  # keys are per customer
        assert s.charges() == 2

        mine = (await s.orders.get("/api/v1/orders", headers=CUSTOMER)).json()["items"]
        assert [o["id"] for o in mine] == [order["id"]]
        theirs = await s.orders.get(f"/api/v1/orders/{other_user.json()['id']}", headers=CUSTOMER)
        assert theirs.status_code == 404
        anonymous = await s.orders.get("/api/v1/orders")
        assert anonymous.status_code == 401

        cancelled = await s.orders.post(f"/api/v1/orders/{order['id']}/cancel", headers=CUSTOMER)
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["refunded_cents"]) == ("cancelled", 2500)
        twice = await s.orders.post(f"/api/v1/orders/{order['id']}/cancel", headers=CUSTOMER)
        assert twice.status_code == 200 and twice.json()["status"] == "cancelled"
        with psycopg.connect(s.payments_uri) as conn:
            row = conn.execute("SELECT status, refunded_cents FROM payments WHERE order_id = %s", [order["id"]])
            assert row.fetchall() == [("refunded", 2500)]
        events = s.rows("SELECT event FROM outbox WHERE key = %s ORDER BY id", order["id"])
        assert [e for (e,) in events] == ["order.created", "order.paid", "order.cancelled"]
        transitions = s.rows(
            "SELECT from_status, to_status FROM order_transitions WHERE order_id = %s ORDER BY id", order["id"]
        )
        assert transitions == [(None, "pending"), ("pending", "paid"), ("paid", "cancelled")]


async def test_a_declined_payment_fails_the_order_which_then_cannot_be_cancelled() -> None:
    async with stack(fake_failure_rate=1.0) as s, serve(s.payments_app(), s.payments_port):
        placed = await s.order("key-declined")
        assert placed.status_code == 201
        assert (placed.json()["status"], placed.json()["failure_code"]) == ("payment_failed", "card_declined")
        cancel = await s.orders.post(f"/api/v1/orders/{placed.json()['id']}/cancel", headers=CUSTOMER)
        assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "invalid_transition"


async def test_a_declined_refund_can_be_retried_and_does_not_block_the_cancel() -> None:
    async with stack() as s:
        async with serve(s.payments_app(fake_refund_failure_rate=1.0), s.payments_port):
            order = (await s.order("key-refund")).json()
            assert order["status"] == "paid"
            for _ in range(2):  # each cancel asks again; each is declined, the order stays paid
                declined = await s.orders.post(f"/api/v1/orders/{order['id']}/cancel", headers=CUSTOMER)
                assert declined.status_code == 502 and declined.json()["error"]["code"] == "refund_declined"
            again = await s.orders.get(f"/api/v1/orders/{order['id']}", headers=CUSTOMER)
            assert again.json()["status"] == "paid"
        async with serve(s.payments_app(), s.payments_port):  # the provider refunds again
            cancelled = await s.orders.post(f"/api/v1/orders/{order['id']}/cancel", headers=CUSTOMER)
            assert cancelled.status_code == 200, cancelled.text
            assert (cancelled.json()["status"], cancelled.json()["refunded_cents"]) == ("cancelled", 2500)
        with psycopg.connect(s.payments_uri) as conn:
            refunds = conn.execute("SELECT status FROM refunds ORDER BY created_at").fetchall()
        assert refunds == [("failed",), ("failed",), ("succeeded",)]  # one refund per attempt, one paid out


async def test_payments_down_opens_the_circuit_then_orders_fail_fast_and_recover() -> None:
    async with stack() as s:
        async with serve(s.payments_app(), s.payments_port):
            assert (await s.order("before")).json()["status"] == "paid"

        timed: list[tuple[int, float, dict[str, Any]]] = []
        async with hanging(s.payments_port) as attempts:
            for n in range(6):
                began = time.monotonic()
                answer = await s.order(f"down-{n}")
                timed.append((answer.status_code, time.monotonic() - began, answer.json()["error"]))
                if n >= 3:
                    assert answer.headers["retry-after"] in ("1", "2")
            assert len(attempts) == 3  # only the first three calls reached payments

        print("\npayments hanging:", [(status, round(seconds, 3), e["code"]) for status, seconds, e in timed])
        for status, seconds, error in timed[:3]:  # each waited out the timeout, no longer
            assert status == 504 and error["code"] == "downstream_timeout"
            assert TIMEOUT <= seconds < TIMEOUT + 0.5
        for status, seconds, error in timed[3:]:  # then fail fast, creating nothing
            assert status == 503 and error["code"] == "service_unavailable" and seconds < 0.1
        pending = s.rows("SELECT idempotency_key FROM orders WHERE status = 'pending' ORDER BY created_at")
        assert pending == [("down-0",), ("down-1",), ("down-2",)]

        async with serve(s.payments_app(), s.payments_port):
            # After the open period, a probe goes through and closes the circuit again.
            recovered = await wait_for(lambda: _paid(s, "after"), within=OPEN_SECONDS + 5, interval=0.2)
            assert recovered["status"] == "paid"
            # The key of a timed-out order stays bound to its request: another body is a 422,
            # not the first order (which a retry of the same request resumes, below).
            reused = await s.order("down-0", currency="USD")
            assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
            # A timed-out order, retried with its key, resumes: paid once.
            resumed = await s.order("down-0")
            assert resumed.status_code == 201 and resumed.json()["status"] == "paid"
            assert resumed.json()["id"] == timed[0][2]["details"]["order_id"]
        assert s.charges() == 3  # before, after, down-0


async def _paid(s: Stack, key: str) -> dict[str, Any] | None:
    answer = await s.order(key)
    return answer.json() if answer.status_code == 201 else None


async def test_a_payment_completed_after_the_order_was_cancelled_is_refunded_once() -> None:
    async with stack() as s:
        async with hanging(s.payments_port):
            timed_out = await s.order("late")
        order_id = timed_out.json()["error"]["details"]["order_id"]
        cancelled = await s.orders.post(f"/api/v1/orders/{order_id}/cancel", headers=CUSTOMER)
        assert (cancelled.json()["status"], cancelled.json()["refunded_cents"]) == ("cancelled", 0)

        async with serve(s.payments_app(), s.payments_port):
            await wait_for(lambda: s.orders_app.state.orders.client.breaker("payments").state == 0, within=1)
            # The charge had gone through after all (payments answered too late): its event arrives.
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{s.payments_port}", headers=s.shop.caller_headers("orders", "payments")
            ) as payments:
                body = {"order_id": order_id, "customer_id": "user-1", "amount_cents": 2500, "currency": "EUR"}
                paid = await payments.post(
                    "/api/v1/payments", json=body, headers={"Idempotency-Key": charge_key(order_id)}
                )
            assert paid.json()["status"] == "succeeded"
            event = Envelope(
                id=str(uuid.uuid4()),
                type="shop.payment.completed",
                time=datetime.now(UTC),
                source="payments",
                data=event_data(Payment.model_validate(paid.json())),
            )
            parts = s.orders_app.state.orders
            handle = handlers(parts.flows, parts.orders)["payment.completed"]
            await handle(event)
            await handle(event)  # redelivered: skipped

        order = (await s.orders.get(f"/api/v1/orders/{order_id}", headers=CUSTOMER)).json()
        assert (order["status"], order["refunded_cents"], order["payment_id"]) == ("cancelled", 2500, paid.json()["id"])
        with psycopg.connect(s.payments_uri) as conn:
            refunds = conn.execute("SELECT count(*) FROM fake_provider_operations WHERE kind = 'refund'").fetchone()
        assert refunds == (1,)
        assert s.rows("SELECT event_type FROM processed_events") == [("shop.payment.completed",)]
        events = s.rows("SELECT event FROM outbox WHERE key = %s ORDER BY id", order_id)
        assert [e for (e,) in events] == ["order.created", "order.cancelled"]  # never order.paid


async def test_orders_that_fail_for_good_do_not_starve_the_resumer() -> None:
    """The resumer's batch used to be the oldest pending orders: a batch's worth that never get a
    verdict held the front of the queue for good, and newer pending orders were never resumed."""
    from keelson_services.db import Database
    from keelson_services.errors import ApiError
    from keelson_services.services.orders.repository import OrderRepository
    from keelson_services.services.orders.resumer import BATCH, PendingOrderResumer

    async with stack() as s:  # its orders app has migrated the database
        hopeless = BATCH + 5
        with psycopg.connect(s.orders_uri, autocommit=True) as conn:
            for n in range(hopeless + 5):  # the hopeless ones are the oldest
                conn.execute(
                    """
                    INSERT INTO orders (user_id, idempotency_key, currency, total_cents, items, updated_at)
                    VALUES ('user-1', %s, 'EUR', 100, '[]', now() - make_interval(secs => %s))
                    """,
                    [f"k{n}", 3600 - n],
                )
        ids = [row[0] for row in s.rows("SELECT id FROM orders ORDER BY updated_at")]
        bad = set(ids[:hopeless])

        class Flows:
            """Payments that never give the hopeless orders a verdict, and pay the others."""

            def __init__(self) -> None:
                self.tried: list[uuid.UUID] = []

            async def resume(self, order_id: uuid.UUID) -> Any:
                self.tried.append(order_id)
                if order_id in bad:
                    raise ApiError(503, "service_unavailable", "payments gave no verdict")
                with psycopg.connect(s.orders_uri, autocommit=True) as conn:
                    conn.execute("UPDATE orders SET status = 'paid' WHERE id = %s", [order_id])
                return type("Paid", (), {"status": "paid"})()

        db = Database(s.orders_uri, max_size=2)
        await db.open(timeout_seconds=10)
        try:
            flows = Flows()
            resumer = PendingOrderResumer(flows, OrderRepository(db), after_seconds=60, interval_seconds=600)  # type: ignore[arg-type]
            assert await resumer.resume_stalled() == 0  # a batch of the hopeless ones
            assert set(flows.tried) <= bad and len(flows.tried) == BATCH
            assert await resumer.resume_stalled() == 5  # the rest, the newer ones among them
            assert set(ids) - bad <= set(flows.tried[BATCH:])
            # The hopeless ones wait out their back-off: the next round tries none of them again.
            flows.tried.clear()
            assert await resumer.resume_stalled() == 0 and flows.tried == []
        finally:
            await db.close()


async def test_the_catalogue_prices_orders_and_their_stock_follows_them() -> None:
    async with stack() as s, serve(s.payments_app(), s.payments_port):
        await s.add_product("MUG", price_cents=800, stock=10)
        listed = await s.orders.get("/api/v1/products?limit=1&offset=1")  # no user: the catalogue is public
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert (page["total"], page["limit"], page["offset"]) == (2, 1, 1)
        [mug] = page["items"]
        assert {k: mug[k] for k in ("sku", "name", "price_cents", "currency", "available")} == {
            "sku": "SKU-1", "name": "Product SKU-1", "price_cents": 1250, "currency": "EUR", "available": 1000,
        }  # fmt: skip

        # Only admins change the catalogue, and only within what pending orders leave them.
        forbidden = await s.orders.patch("/api/v1/admin/products/MUG", json={"price_cents": 1}, headers=CUSTOMER)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
        again = await s.orders.post(
            "/api/v1/admin/products",
            json={"sku": "MUG", "name": "Mug", "price_cents": 1, "currency": "EUR"},
            headers=ADMIN,
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        missing = await s.orders.patch("/api/v1/admin/products/NOPE", json={"stock": 1}, headers=ADMIN)
        assert missing.status_code == 404
        repriced = await s.orders.patch("/api/v1/admin/products/MUG", json={"price_cents": 900}, headers=ADMIN)
        assert repriced.status_code == 200 and repriced.json()["price_cents"] == 900

        # The client names SKUs and quantities; a price of its own is refused, an unknown SKU named.
        priced = await s.order("k-priced", items=[{"sku": "MUG", "quantity": 1, "unit_price_cents": 1}])
        assert priced.status_code == 422 and priced.json()["error"]["code"] == "validation_failed"
        assert priced.json()["error"]["details"]["errors"][0]["location"] == ["body", "items", "0", "unit_price_cents"]
        unknown = await s.order("k-unknown", items=[{"sku": "MUG", "quantity": 1}, {"sku": "GHOST", "quantity": 1}])
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_sku"
        assert unknown.json()["error"]["details"]["items"] == [{"index": 1, "sku": "GHOST"}]
        other_currency = await s.order("k-usd", items=[{"sku": "MUG", "quantity": 1}], currency="USD")
        assert other_currency.status_code == 422 and other_currency.json()["error"]["code"] == "currency_mismatch"
        too_many = await s.order("k-many", items=[{"sku": "MUG", "quantity": 11}])
        assert too_many.status_code == 409 and too_many.json()["error"]["code"] == "out_of_stock"
        assert too_many.json()["error"]["details"] == {"sku": "MUG", "requested": 11, "available": 10}
        assert s.rows("SELECT count(*) FROM orders") == [(0,)] and s.charges() == 0

        placed = await s.order("k-mug", items=[{"sku": "MUG", "quantity": 3}, {"sku": "SKU-1", "quantity": 1}])
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert (order["status"], order["total_cents"]) == ("paid", 3 * 900 + 1250)
        assert order["items"][0] == {"sku": "MUG", "name": "Product MUG", "quantity": 3, "unit_price_cents": 900}
        assert await s.product("MUG") == {"stock": 7, "reserved": 0, "available": 7}  # committed: sold
        # Stock cannot go below what pending orders hold; here none do.
        assert (await s.orders.patch("/api/v1/admin/products/MUG", json={"stock": 5}, headers=ADMIN)).status_code == 200

        cancelled = await s.orders.post(f"/api/v1/orders/{order['id']}/cancel", headers=CUSTOMER)
        assert cancelled.json()["status"] == "cancelled"
        assert await s.product("MUG") == {"stock": 8, "reserved": 0, "available": 8}  # refunded: restocked


async def test_a_declined_payment_releases_the_stock_it_reserved() -> None:
    async with stack(fake_failure_rate=1.0) as s, serve(s.payments_app(), s.payments_port):
        await s.add_product("MUG", price_cents=800, stock=3)
        failed = await s.order("k-1", items=[{"sku": "MUG", "quantity": 3}])
        assert failed.json()["status"] == "payment_failed"
        assert await s.product("MUG") == {"stock": 3, "reserved": 0, "available": 3}


async def test_a_pending_order_holds_its_stock_until_it_is_cancelled() -> None:
    async with stack() as s:
        await s.add_product("MUG", price_cents=800, stock=3)
        async with hanging(s.payments_port):
            timed_out = await s.order("k-1", items=[{"sku": "MUG", "quantity": 2}])
        assert timed_out.status_code == 504
        assert await s.product("MUG") == {"stock": 3, "reserved": 2, "available": 1}
        below = await s.orders.patch("/api/v1/admin/products/MUG", json={"stock": 1}, headers=ADMIN)
        assert below.status_code == 409 and below.json()["error"]["code"] == "stock_reserved"
        order_id = timed_out.json()["error"]["details"]["order_id"]
        cancelled = await s.orders.post(f"/api/v1/orders/{order_id}/cancel", headers=CUSTOMER)
        assert cancelled.json()["status"] == "cancelled"
        assert await s.product("MUG") == {"stock": 3, "reserved": 0, "available": 3}


async def test_fifty_concurrent_orders_for_the_last_ten_items_sell_exactly_ten() -> None:
    async with stack() as s, serve(s.payments_app(), s.payments_port):
        await s.add_product("LAST", price_cents=500, stock=10)

        async def buy(n: int) -> httpx.Response:
            customer = {"X-User-Id": f"user-{n}", "X-User-Roles": "customer"}
            return await s.order(f"k-{n}", customer=customer, items=[{"sku": "LAST", "quantity": 1}])

        answers = await asyncio.gather(*(buy(n) for n in range(50)))
        outcomes: dict[tuple[int, str], int] = {}
        for answer in answers:
            body = answer.json()
            outcome = (answer.status_code, body["status"] if answer.status_code == 201 else body["error"]["code"])
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print("\n50 concurrent orders for 10 items:", outcomes)
        assert outcomes == {(201, "paid"): 10, (409, "out_of_stock"): 40}
        assert await s.product("LAST") == {"stock": 0, "reserved": 0, "available": 0}
        assert s.rows('SELECT count(*) FROM orders WHERE items @> \'[{"sku": "LAST"}]\'') == [(10,)]
        assert s.charges() == 10


async def test_an_admin_ships_then_delivers_a_paid_order_which_then_cannot_be_cancelled() -> None:
    async with stack() as s, serve(s.payments_app(), s.payments_port):
        order = (await s.order("k-ship")).json()
        assert order["status"] == "paid"
        ship, deliver = (f"/api/v1/admin/orders/{order['id']}/{step}" for step in ("ship", "deliver"))

        customer = await s.orders.post(ship, headers=CUSTOMER)
        assert customer.status_code == 403 and customer.json()["error"]["code"] == "forbidden"
        too_soon = await s.orders.post(deliver, headers=ADMIN)
        assert too_soon.status_code == 409 and too_soon.json()["error"]["details"] == {
            "status": "paid", "requested": "delivered",
        }  # fmt: skip
        missing = await s.orders.post(f"/api/v1/admin/orders/{uuid.uuid4()}/ship", headers=ADMIN)
        assert missing.status_code == 404

        shipped = await s.orders.post(ship, headers=ADMIN)
        assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
        assert (await s.orders.post(ship, headers=ADMIN)).json()["status"] == "shipped"  # again: no error, no event
        cancel = await s.orders.post(f"/api/v1/orders/{order['id']}/cancel", headers=CUSTOMER)
        assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "invalid_transition"
        delivered = await s.orders.post(deliver, headers=ADMIN)
        assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
        mine = await s.orders.get(f"/api/v1/orders/{order['id']}", headers=CUSTOMER)
        assert mine.json()["status"] == "delivered"

        events = s.rows("SELECT event, data->>'status' FROM outbox WHERE key = %s ORDER BY id", order["id"])
        assert events == [
            ("order.created", "pending"), ("order.paid", "paid"),
            ("order.shipped", "shipped"), ("order.delivered", "delivered"),
        ]  # fmt: skip
        transitions = s.rows(
            "SELECT from_status, to_status, cause FROM order_transitions WHERE order_id = %s ORDER BY id", order["id"]
        )
        assert transitions[2:] == [("paid", "shipped", "shipped by admin admin-1"),
                                   ("shipped", "delivered", "delivered by admin admin-1")]  # fmt: skip
        assert await s.product("SKU-1") == {"stock": 998, "reserved": 0, "available": 998}  # sold, not restocked


async def test_user_deleted_unlinks_the_accounts_orders_and_keeps_what_accounting_needs() -> None:
    async with stack() as s, serve(s.payments_app(), s.payments_port):
        mine = [(await s.order(f"mine-{n}")).json() for n in range(2)]
        other = (await s.order("theirs", customer={"X-User-Id": "user-2", "X-User-Roles": "customer"})).json()
        assert {o["status"] for o in [*mine, other]} == {"paid"}
        s.rows("UPDATE outbox SET published_at = now() RETURNING id")  # as if the relay had published them
        before = s.rows("SELECT id, total_cents, currency, items, payment_id, created_at FROM orders ORDER BY id")

        event = Envelope(
            id=str(uuid.uuid4()), type="shop.user.deleted", time=datetime.now(UTC), source="users",
            data={"user_id": "user-1"},
        )  # fmt: skip
        parts = s.orders_app.state.orders
        handle = handlers(parts.flows, parts.orders)["user.deleted"]
        await handle(event)
        await handle(event)  # redelivered: nothing left to erase, no harm

        # Accounting's view is unchanged: amounts, currency, items (SKUs, prices), payments, dates.
        after = s.rows("SELECT id, total_cents, currency, items, payment_id, created_at FROM orders ORDER BY id")
        assert after == before
        erased = s.rows("SELECT id, user_id, idempotency_key, erased_at FROM orders WHERE erased_at IS NOT NULL")
        assert sorted(str(order_id) for order_id, *_ in erased) == sorted(o["id"] for o in mine)
        for order_id, user_id, key, _ in erased:
            assert (user_id, key) == (f"erased:{order_id}", str(order_id))
        assert s.rows("SELECT count(*) FROM orders WHERE user_id = 'user-1'") == [(0,)]
        assert s.rows("SELECT count(*) FROM idempotency_keys WHERE scope LIKE '%%user-1'") == [(0,)]
        assert s.rows("SELECT count(*) FROM outbox WHERE data->>'user_id' = 'user-1'") == [(0,)]
        # The other customer's orders are untouched, and the deleted account sees no orders.
        assert s.rows("SELECT count(*) FROM orders WHERE user_id = 'user-2' AND erased_at IS NULL") == [(1,)]
        assert (await s.orders.get("/api/v1/orders", headers=CUSTOMER)).json()["items"] == []
        malformed = Envelope(id=str(uuid.uuid4()), type=event.type, time=event.time, source="users", data={})
        with pytest.raises(PermanentError):
            await handle(malformed)
