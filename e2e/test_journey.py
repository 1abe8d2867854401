"""The customer journey through the gateway, with all five reference services in one process
(httpx.ASGITransport between them), each on its own PostgreSQL database, a real Kafka broker and
a local SMTP sink: register, log in, order, pay, get notified. Every hop is asserted (rows,
events, email) and carries one trace id, the one the client started."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from e2e.svc_platform import Shop, kafka_bootstrap, read_topic, wait_for
from e2e.svc_shop import PASSWORD, RunningShop, rows, shop

__all__ = ["kafka_bootstrap", "shop"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


def trace_of(traceparent: str | bytes | None) -> str:
    value = traceparent.decode() if isinstance(traceparent, bytes) else str(traceparent)
    return value.split("-")[1]


async def test_register_log_in_order_pay_and_be_notified_under_one_trace(shop: RunningShop) -> None:
    platform: Shop = shop.platform
    client: httpx.AsyncClient = shop.client
    uris: dict[str, str] = shop.uris
    sink = shop.sink
    bootstrap = platform.bootstrap
    assert bootstrap

    registered = await client.post(
        "/api/v1/users", json={"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
    )
    assert registered.status_code == 201, registered.text
    user_id = registered.json()["id"]
    login = await client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # An unverified account may not order (docs/accounts.md); the link comes by email, with the welcome.
    unverified = await client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "SKU-1", "quantity": 1}]},
        headers=auth | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert unverified.status_code == 403 and unverified.json()["error"]["code"] == "email_not_verified"
    await wait_for(lambda: len(sink.messages) == 2, within=30)
    assert sorted(str(m["Subject"]) for m in sink.messages) == ["Confirm your email for shop", "Welcome to shop, Ada"]
    token = await sink.link_token("ada@example.com", "verify-email")
    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 204
    recorded = rows(uris["notifications"], "SELECT body FROM notifications WHERE template = 'verify_email'")
    assert [token in body for (body,) in recorded] == [False]  # sent, never stored
    # A push device (a subscription of the local push service): pushes go to users who have one.
    device = await client.post("/api/v1/notifications/devices", json=shop.push.subscribe().json(), headers=auth)
    assert device.status_code == 201, device.text

    # The catalogue needs no login; the order names a SKU and a quantity, the shop prices it.
    catalogue = await client.get("/api/v1/products")
    assert catalogue.status_code == 200, catalogue.text
    (product,) = catalogue.json()["items"]
    assert (product["sku"], product["price_cents"], product["available"]) == ("SKU-1", 1250, 10_000)
    trace = uuid.uuid4().hex
    placed = await client.post(
        "/api/v1/orders",
        json={"items": [{"sku": product["sku"], "quantity": 3}]},
        headers=auth | {"Idempotency-Key": str(uuid.uuid4()), "traceparent": f"00-{trace}-{'a' * 16}-01"},
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert (order["status"], order["total_cents"], order["currency"]) == ("paid", 3750, "EUR")
    assert (await client.get("/api/v1/products/SKU-1")).json()["available"] == 10_000 - 3
    assert placed.headers["x-trace-id"] == trace

    # The email, sent by notifications from order.paid.
    await wait_for(lambda: len(sink.messages) == 3, within=30)
    email = sink.messages[2]
    assert email["To"] == "ada@example.com" and email["Subject"] == f"Your order {order['id'][:8]} is paid"
    assert email["X-Trace-Id"] == trace

    # Orders: the row, its transitions, its events (published, with the trace).
    assert rows(uris["orders"], "SELECT user_id, status, payment_id::text FROM orders") == [
        (user_id, "paid", order["payment_id"])
    ]
    await wait_for(
        lambda: rows(uris["orders"], "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)], within=20
    )
    order_events = rows(uris["orders"], "SELECT event, traceparent FROM outbox ORDER BY id")
    assert [(e, trace_of(t)) for e, t in order_events] == [("order.created", trace), ("order.paid", trace)]
    # Payments: one charge, its event.
    assert rows(uris["payments"], "SELECT id::text, order_id::text, status, amount_cents FROM payments") == [
        (order["payment_id"], order["id"], "succeeded", 3750)
    ]
    assert rows(uris["payments"], "SELECT count(*) FROM fake_provider_operations") == [(1,)]
    ((payment_event, payment_trace),) = rows(uris["payments"], "SELECT event, traceparent FROM outbox")
    assert (payment_event, trace_of(payment_trace)) == ("payment.completed", trace)
    # The topics: each event once, with the trace.
    for event in ("order.created", "order.paid", "payment.completed"):
        (record,) = await wait_for(lambda e=event: read_topic(bootstrap, platform.topic(e)), within=10)
        assert trace_of(dict(record.headers)["traceparent"]) == trace, event
        assert json.loads(record.value)["data"]["order_id"] == order["id"]
    # Orders consumed payment.completed too (a no-op: the answer had settled the order).
    await wait_for(lambda: rows(uris["orders"], "SELECT count(*) FROM processed_events") == [(1,)], within=20)
    # Notifications: what it sent for this order, under the same trace.
    await wait_for(
        lambda: rows(uris["notifications"], "SELECT count(*) FROM notifications WHERE status = 'sent'") == [(5,)],
        within=20,
    )
    sent = rows(
        uris["notifications"],
        "SELECT event_type, channel, trace_id FROM notifications WHERE trace_id = %s ORDER BY event_type, channel",
        trace,
    )
    assert [(e.rsplit(".", 2)[-2:], c) for e, c, _ in sent] == [
        (["order", "created"], "push"), (["order", "paid"], "email"), (["order", "paid"], "push"),
    ]  # fmt: skip

    # What the customer sees through the gateway.
    read = await client.get(f"/api/v1/orders/{order['id']}", headers=auth)
    assert read.status_code == 200 and read.json()["status"] == "paid"
    history = await client.get("/api/v1/notifications", headers=auth)
    assert history.status_code == 200
    assert {(n["channel"], n["template"]) for n in history.json()["items"]} == {
        ("email", "welcome"), ("email", "verify_email"), ("push", "order_received"), ("email", "order_paid"),
        ("push", "order_paid"),
    }  # fmt: skip
    cancelled = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    await wait_for(lambda: len(sink.messages) == 4, within=30)
    assert sink.messages[3]["Subject"] == f"Your order {order['id'][:8]} is cancelled"


async def test_payments_down_is_a_503_naming_payments_and_leaves_the_gateways_breaker_for_orders_closed(
    shop: RunningShop,
) -> None:
    """Payments unreachable: orders retries it within the gateway's deadline and answers 503
    naming payments, then fails fast once its breaker opens; the gateway passes those answers on
    (naming nothing internal to the client) without retrying them or holding them against orders,
    which keeps serving everything else."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    await shop.register("cas@example.com", name="Cas")
    auth = await shop.bearer("cas@example.com")
    shop.transport.by_service["payments"] = httpx.MockTransport(refuse)
    body = {"items": [{"sku": "SKU-1", "quantity": 1}]}
    answers = []
    for _ in range(5):
        answer = await shop.client.post(
            "/api/v1/orders", json=body, headers=auth | {"Idempotency-Key": str(uuid.uuid4())}
        )
        answers.append(answer)
    # Each is orders' 503 (answered before the gateway's own timeout, else a 504); since the edge
    # names no internal service to clients (`gateway/edge.py`), which one failed is seen inside:
    # orders' breaker for payments opened.
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(503, "service_unavailable")] * 5
    assert all(a.headers["retry-after"] for a in answers)
    payments_breaker = shop.apps["orders"].state.orders.client.breaker("payments")
    assert payments_breaker.state.name == "OPEN"
    gateway_client = shop.apps["gateway"].state.gateway.client
    orders_breaker = gateway_client.breaker("orders")
    assert (orders_breaker.state.name, orders_breaker.consecutive_failures) == ("CLOSED", 0)
    listed = await shop.client.get("/api/v1/orders", headers=auth)
    assert listed.status_code == 200
    # The orders whose payment got no verdict stay pending (resumed later); none was paid.
    statuses = {status for (status,) in rows(shop.uris["orders"], "SELECT status FROM orders")}
    assert statuses == {"pending"}


async def test_an_admin_ships_and_delivers_an_order_and_the_customer_is_emailed_each_time(shop: RunningShop) -> None:
    await shop.register("dot@example.com", name="Dot")
    await shop.register("boss@example.com", name="Boss")
    await shop.grant_admin("boss@example.com")
    customer, admin = await shop.bearer("dot@example.com"), await shop.bearer("boss@example.com")
    placed = await shop.client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "SKU-1", "quantity": 1}]},
        headers=customer | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert placed.status_code == 201 and placed.json()["status"] == "paid", placed.text
    order_id = placed.json()["id"]

    forbidden = await shop.client.post(f"/api/v1/admin/orders/{order_id}/ship", headers=customer)
    assert forbidden.status_code == 403
    for step, status in (("ship", "shipped"), ("deliver", "delivered")):
        moved = await shop.client.post(f"/api/v1/admin/orders/{order_id}/{step}", headers=admin)
        assert moved.status_code == 200 and moved.json()["status"] == status, moved.text
        subject = f"Your order {order_id[:8]} is {status}"
        await wait_for(lambda s=subject: [m for m in shop.sink.messages if m["Subject"] == s], within=30)
    mine = await shop.client.get(f"/api/v1/orders/{order_id}", headers=customer)
    assert mine.json()["status"] == "delivered"
    # Each once; the "paid" email may come after them (each topic is consumed on its own).
    await wait_for(lambda: len(shop.sink.to("dot@example.com")) == 5, within=30)
    subjects = sorted(str(m["Subject"]) for m in shop.sink.to("dot@example.com"))
    assert subjects == sorted(
        [f"Your order {order_id[:8]} is {s}" for s in ("paid", "shipped", "delivered")]
        + ["Welcome to shop, Dot", "Confirm your email for shop"]
    )


async def test_deleting_an_account_erases_it_in_users_and_orders_which_keep_the_accounts(shop: RunningShop) -> None:
    """DELETE /users/me: the users row is tombstoned at once; user.deleted, through Kafka, has
    orders unlink the account's orders while keeping amounts, items and payments; the account's
    tokens stop working."""
    eli = await shop.register("eli@example.com", name="Eli Personal")
    auth = await shop.bearer("eli@example.com")
    placed = await shop.client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "SKU-1", "quantity": 2}]},
        headers=auth | {"Idempotency-Key": "eli-own-key"},
    )
    assert placed.status_code == 201 and placed.json()["status"] == "paid", placed.text
    order = placed.json()

    assert (await shop.client.delete("/api/v1/users/me", headers=auth)).status_code == 204
    assert rows(shop.uris["users"], "SELECT email, name, active FROM users WHERE id = %s", eli["id"]) == [
        (f"erased-{eli['id']}@erased.invalid", "", False)
    ]
    erased = "SELECT user_id, idempotency_key, total_cents, items, payment_id::text FROM orders WHERE id = %s"
    await wait_for(lambda: rows(shop.uris["orders"], erased, order["id"])[0][0] != eli["id"], within=30)
    [(user_id, key, total, items, payment_id)] = rows(shop.uris["orders"], erased, order["id"])
    assert (user_id, key) == (f"erased:{order['id']}", order["id"])
    assert (total, payment_id) == (2 * 1250, order["payment_id"]) and items[0]["sku"] == "SKU-1"
    assert rows(shop.uris["payments"], "SELECT amount_cents FROM payments WHERE order_id = %s", order["id"]) == [
        (2 * 1250,)
    ]

    async def refused() -> bool:
        return (await shop.client.get("/api/v1/orders", headers=auth)).status_code == 401

    await wait_for(refused, within=5 + 5, interval=0.5)  # the gateway's account check interval, and margin
    login = await shop.client.post("/api/v1/auth/token", json={"email": "eli@example.com", "password": PASSWORD})
    assert login.status_code == 401
