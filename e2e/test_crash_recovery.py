"""Crashes mid-journey: the five reference services as real OS processes (`python -m
keelson_services.run NAME`, the operator's env with the in-cluster URLs mapped to loopback ports),
each on a fresh PostgreSQL database, on a real Kafka broker, emails to an SMTP sink in this
process. One service is SIGKILLed while customers place orders through the gateway, then started
again; the customers' clients retry each failed request with the same Idempotency-Key, as a real
client does. Afterwards no order is lost, no payment doubled, no notification sent twice:
asserted on the databases, the topics and the sink.

The platform's resilience settings are shortened (a 2 s timeout, a breaker open for 1 s, retries
after 1 s) and so are the idempotency leases that follow from them, so that recovery takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from e2e.svc_platform import Shop, SmtpSink, kafka_bootstrap, read_topic, wait_for
from e2e.svc_postgres import fresh_database
from e2e.svc_processes import TEST_KEK, spawn, stop, wait_ready
from keelson.devstack.ports import free_port
from keelson.devstack.services import local_env

__all__ = ["kafka_bootstrap"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

SERVICES = ("users", "payments", "orders", "notifications", "gateway")  # the gateway last: it calls the others
RESILIENCE = {
    "timeoutSeconds": 2,
    "circuitBreaker": {"consecutiveFailures": 3, "openSeconds": 1},
    "retry": {"backoffSeconds": [1], "maxRetries": 2},
}
SERVICE_ENV = {
    "KEELSON_KEY_ENCRYPTION_KEY": TEST_KEK,  # what the operator puts in the database Secret
    "KEELSON_USERS_ARGON2_TIME_COST": "1",
    "KEELSON_USERS_ARGON2_MEMORY_KIB": "1024",
    # A charge takes a moment, so that requests are in flight when a service dies.
    "KEELSON_PAYMENTS_FAKE_LATENCY_MS": "300",
    # Each lease outlasts the request it guards, as the defaults do at their scale: orders' a
    # payment call with its retries (3 attempts of 2 s, 2 s of backoff), payments' a charge.
    "KEELSON_ORDERS_IDEMPOTENCY_LEASE_SECONDS": "8",
    "KEELSON_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS": "3",
    # Orders left pending resume once orders' lease is over, looked for every second.
    "KEELSON_ORDERS_RESUME_AFTER_SECONDS": "9",
    "KEELSON_ORDERS_RESUME_INTERVAL_SECONDS": "1",
}
CUSTOMERS, ORDERS_EACH = 4, 5  # 20 orders, 4 clients placing them concurrently
KILL_AFTER = 6  # paid orders (charges, emails) before the kill: some done, some in flight, some to come
STOCK = 1000  # of the one product, SKU-1 at 12.50 EUR; each order takes 2
BODY = {"items": [{"sku": "SKU-1", "quantity": 2}], "currency": "EUR"}


def rows(uri: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri) as conn:
        return conn.execute(query, params).fetchall()


def count(uri: str, query: str, *params: Any) -> int:
    ((n,),) = rows(uri, query, *params)
    return int(n)


class KillingSink(SmtpSink):
    """The SMTP sink, which can SIGKILL a process when it has accepted a chosen message: the
    sender dies after the server took the email and before it could record that it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.kill_on: Callable[[list[Any]], subprocess.Popen[bytes] | None] = lambda _: None
        self.killed_at: str | None = None  # the Message-ID accepted when the kill came

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        victim = self.kill_on(self.messages)
        if victim is not None and self.killed_at is None:
            victim.kill()
            self.killed_at = str(self.messages[-1]["Message-ID"])
        return answer

    def paid(self) -> list[Any]:
        """The 'order paid' emails, in arrival order."""
        return [m for m in self.messages if str(m["Subject"]).endswith(" is paid")]


@dataclass
class Platform:
    shop: Shop
    uris: dict[str, str]
    sink: KillingSink
    logs: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in SERVICES})
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self, name: str) -> dict[str, str]:
        """The operator's ConfigMap env and the database Secret's URI, as a local process gets them."""
        env = {**self.shop.env(name), **SERVICE_ENV}
        if name in self.uris:
            env["KEELSON_DATABASE_URI"] = self.uris[name]
        smtp = self.sink.port if name == "notifications" else None
        return local_env(env, service=name, namespace="shop", ports=self.ports, smtp_port=smtp)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, *names: str) -> None:
        for name in names:
            self.processes[name] = spawn(name, self.env(name), self.logs / f"{name}.log")
        for name in names:
            wait_ready(self.url(name), self.processes[name], self.logs / f"{name}.log")

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        process = self.processes[name]
        process.kill()
        process.wait(timeout=10)
        assert process.returncode == -9

    async def stock_catalogue(self) -> None:
        """SKU-1 in the catalogue, added by an admin through the gateway's route to orders."""
        product = {"sku": "SKU-1", "name": "Anchor", "price_cents": 1250, "currency": "EUR", "stock": STOCK}
        headers = self.shop.caller_headers("gateway", "orders") | {"X-User-Id": "admin", "X-User-Roles": "admin"}
        async with httpx.AsyncClient(base_url=self.url("orders"), headers=headers) as orders:
            added = await orders.post("/api/v1/admin/products", json=product)
        assert added.status_code == 201, added.text

    def stop(self) -> None:
        for name in reversed(SERVICES):
            if name in self.processes:
                stop(self.processes[name])


@pytest.fixture
async def platform(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Platform]:
    shop = Shop(kafka_bootstrap, resilience=RESILIENCE)
    await shop.create_topics()
    sink = KillingSink()
    sink.start()
    with ExitStack() as dbs:
        uris = {name: dbs.enter_context(fresh_database(name)) for name in SERVICES if name != "gateway"}
        running = Platform(shop, uris, sink, tmp_path)
        try:
            running.start(*SERVICES)
            await running.stock_catalogue()
            yield running
        finally:
            running.stop()  # before the databases are dropped
            sink.stop()


@dataclass
class Customer:
    email: str
    token: str = ""
    user_id: str = ""


@dataclass
class Placed:
    key: str
    customer: Customer
    order: dict[str, Any] = field(default_factory=dict)
    attempts: list[int | str] = field(default_factory=list)  # statuses, or the transport error


async def customers(http: httpx.AsyncClient, sink: SmtpSink) -> list[Customer]:
    """Registered, verified (the link from the email) and logged in, and known to notifications
    (their welcome and verification emails arrived)."""
    people = [Customer(f"c{n}-{uuid.uuid4().hex[:6]}@example.com") for n in range(CUSTOMERS)]
    for person in people:
        body = {"email": person.email, "password": "correct horse battery", "name": person.email[:2]}
        registered = await http.post("/api/v1/users", json=body)
        assert registered.status_code == 201, registered.text
        person.user_id = registered.json()["id"]
        login = await http.post("/api/v1/auth/token", json={"email": person.email, "password": body["password"]})
        assert login.status_code == 200, login.text
        person.token = login.json()["access_token"]
    for person in people:
        token = await sink.link_token(person.email, "verify-email")
        assert (await http.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 204
    await wait_for(lambda: len(sink.messages) == 2 * CUSTOMERS, within=30)
    return people


async def place(http: httpx.AsyncClient, placed: Placed, *, retry: bool = True, within: float = 60) -> None:
    """Place the order as a real client does: a failed request (no answer, 409 still running,
    502/503/504) is sent again with the same Idempotency-Key after a short back-off. Without
    `retry`, the client gives up after the first answer (an order it was told is pending keeps
    its id in `placed.order`)."""
    headers = {"Authorization": f"Bearer {placed.customer.token}", "Idempotency-Key": placed.key}
    deadline = time.monotonic() + within
    while True:
        try:
            answer = await http.post("/api/v1/orders", json=BODY, headers=headers)
        except httpx.TransportError as exc:
            placed.attempts.append(type(exc).__name__)
        else:
            placed.attempts.append(answer.status_code)
            if answer.status_code == 201:
                placed.order = answer.json()
                return
            assert answer.status_code in (409, 502, 503, 504), answer.text
            if not retry:
                details = answer.json()["error"]["details"]
                if "order_id" in details:
                    placed.order = {"id": details["order_id"], "status": details["order_status"]}
                return
        assert time.monotonic() < deadline, f"{placed.key}: no order within {within} s: {placed.attempts}"
        await asyncio.sleep(0.2)  # the client's back-off between retries (not a wait for a condition)


async def place_all(
    http: httpx.AsyncClient, people: list[Customer], *, retry: bool = True
) -> tuple[list[Placed], asyncio.Task[None]]:
    """Every customer's client places its orders one after another, all clients at once."""
    batch = [Placed(f"order-{n}-{uuid.uuid4()}", person) for person in people for n in range(ORDERS_EACH)]

    async def client(person: Customer) -> None:
        for placed in batch:
            if placed.customer is person:
                await place(http, placed, retry=retry)

    async def everyone() -> None:
        await asyncio.gather(*(client(person) for person in people))

    return batch, asyncio.create_task(everyone())


async def assert_every_order_paid_once(p: Platform, batch: list[Placed], *, emails_received_once: bool = True) -> None:
    """No order lost or doubled, each charged once, each order.paid published, each emailed once
    (`emails_received_once`: by the sink; else as recorded by notifications)."""
    orders, payments, notifications = p.uris["orders"], p.uris["payments"], p.uris["notifications"]
    by_key = {placed.key: placed for placed in batch}
    ids = {placed.order["id"] for placed in batch}
    assert len(ids) == len(batch) and all(placed.order["status"] == "paid" for placed in batch)
    # Orders: one per (customer, key), the one its client was answered with, paid.
    stored = rows(orders, "SELECT idempotency_key, user_id, id::text, status, payment_id::text FROM orders")
    assert sorted((key, user, order, status) for key, user, order, status, _ in stored) == sorted(
        (key, placed.customer.user_id, placed.order["id"], "paid") for key, placed in by_key.items()
    )
    # Payments: exactly one payment and one provider charge per order, each succeeded.
    charged = rows(payments, "SELECT order_id::text, id::text, status FROM payments")
    assert sorted(charged) == sorted((order, payment, "succeeded") for _, _, order, _, payment in stored)
    operations = rows(payments, "SELECT key, succeeded FROM fake_provider_operations WHERE kind = 'charge'")
    assert sorted(operations) == sorted((f"charge:{payment}", True) for _, payment, _ in charged)
    # Events: one order.paid per order in each outbox, all published; on the topic, each order's
    # order.paid is one event (a relay crash may publish an event twice, with its id, which the
    # consumers deduplicate on; the design promises at least once per event, never two events).
    for uri in (orders, payments):
        await wait_for(lambda u=uri: count(u, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0, within=20)
    paid_events = rows(orders, "SELECT key, count(*) FROM outbox WHERE event = 'order.paid' GROUP BY key")
    assert sorted(paid_events) == sorted((order, 1) for order in ids)
    completed = rows(payments, "SELECT key, count(*) FROM outbox WHERE event = 'payment.completed' GROUP BY key")
    assert sorted(completed) == sorted((order, 1) for order in ids)
    # Stock: each paid order took its 2 units once, and no reservation is left behind.
    assert rows(orders, "SELECT stock, reserved FROM products") == [(STOCK - 2 * len(ids), 0)]
    assert p.shop.bootstrap
    records = await read_topic(p.shop.bootstrap, p.shop.topic("order.paid"))
    events_by_order: dict[str, set[str]] = {}
    for record in records:
        event = json.loads(record.value)
        events_by_order.setdefault(event["data"]["order_id"], set()).add(event["id"])
    assert set(events_by_order) == ids and all(len(events) == 1 for events in events_by_order.values())
    # Notifications: the "order paid" email of each order recorded sent once, and received once.
    paid_emails_sent = "SELECT count(*) FROM notifications WHERE template = 'order_paid' AND channel = 'email'"
    paid_emails_sent += " AND status = 'sent'"
    await wait_for(lambda: count(notifications, paid_emails_sent) == len(ids), within=40)
    assert count(notifications, "SELECT count(*) FROM notifications WHERE status <> 'sent'") == 0
    received = Counter(str(m["Subject"]).split()[2] for m in p.sink.paid())
    if emails_received_once:
        assert received == Counter(order[:8] for order in ids)
    else:
        assert set(received) == {order[:8] for order in ids}


async def killed_mid_batch(p: Platform, service: str, ripe: Callable[[], bool], *, retry: bool = True) -> list[Placed]:
    """Customers place their orders; `service` is SIGKILLed once `ripe()` (some orders paid, a
    charge under way), and started again; the clients retry until each order is placed (or,
    without `retry`, take the first answer)."""
    async with httpx.AsyncClient(base_url=p.url("gateway"), timeout=30) as http:
        people = await customers(http, p.sink)
        batch, clients = await place_all(http, people, retry=retry)
        await wait_for(lambda: ripe() or clients.done(), within=60, interval=0.02)
        p.kill(service)
        in_flight = sum(1 for placed in batch if not placed.order)
        assert in_flight > 0, "every order was placed before the kill"
        p.start(service)
        await asyncio.wait_for(clients, 90)
    retried = [placed.attempts for placed in batch if len(placed.attempts) > 1]
    print(f"\n{service} killed with {in_flight} orders to go; retried requests: {retried}")
    if retry:
        assert retried, f"no request was in flight when {service} died"
    return batch


def mid_charge(p: Platform) -> bool:
    """The moment to kill payments: charges done, and at least one at the provider."""
    payments = p.uris["payments"]
    done = count(payments, "SELECT count(*) FROM payments WHERE status = 'succeeded'")
    return done >= KILL_AFTER and count(payments, "SELECT count(*) FROM payments WHERE status = 'processing'") > 0


async def test_orders_killed_mid_batch_loses_no_order_and_charges_none_twice(platform: Platform) -> None:
    p = platform
    # Killed with orders paid and at least one waiting for its charge's answer.
    paid, pending = (f"SELECT count(*) FROM orders WHERE status = '{status}'" for status in ("paid", "pending"))
    batch = await killed_mid_batch(
        p, "orders", lambda: count(p.uris["orders"], paid) >= KILL_AFTER and count(p.uris["orders"], pending) > 0
    )
    await assert_every_order_paid_once(p, batch)


async def test_payments_killed_mid_batch_doubles_no_payment(platform: Platform) -> None:
    p = platform
    batch = await killed_mid_batch(p, "payments", lambda: mid_charge(p))
    # What flows.py promises for a charge that got no verdict: the order stayed pending and the
    # client's retry with its key resumed it, paying it once (asserted below). Payments left no
    # charge half done either.
    assert count(p.uris["payments"], "SELECT count(*) FROM payments WHERE status = 'processing'") == 0
    await assert_every_order_paid_once(p, batch)


async def test_notifications_killed_between_send_and_record_sends_no_email_twice(platform: Platform) -> None:
    """Killed after the SMTP server accepted an email and before notifications recorded it sent:
    the only window where a second send is possible. After the restart the email is sent again
    (its sender cannot know it went out) with the same Message-ID, so the receiving side
    recognises it; every other email arrives exactly once."""
    p = platform
    p.sink.kill_on = lambda _: p.processes["notifications"] if len(p.sink.paid()) == KILL_AFTER else None
    async with httpx.AsyncClient(base_url=p.url("gateway"), timeout=30) as http:
        people = await customers(http, p.sink)
        batch, clients = await place_all(http, people)
        await wait_for(lambda: p.sink.killed_at, within=60, interval=0.02)
        assert p.processes["notifications"].wait(timeout=10) == -9
        assert len(p.sink.paid()) < len(batch), "every email went out before the kill"
        p.start("notifications")
        await asyncio.wait_for(clients, 60)
    assert all(placed.attempts == [201] for placed in batch)  # only notifications died
    await assert_every_order_paid_once_by_message_id(p, batch)


async def assert_every_order_paid_once_by_message_id(p: Platform, batch: list[Placed]) -> None:
    notifications = p.uris["notifications"]
    ids = {placed.order["id"] for placed in batch}
    await wait_for(
        lambda: (
            count(notifications, "SELECT count(*) FROM notifications WHERE status = 'sent'") == 2 * CUSTOMERS + len(ids)
        ),  # a welcome and a verification email each; order.paid's email (no pushes: no device registered)
        within=60,
    )
    assert count(notifications, "SELECT count(*) FROM notifications WHERE status <> 'sent'") == 0
    # One row per (event, channel), and only the email in flight at the kill was attempted twice.
    attempts = rows(notifications, "SELECT provider_id, attempts FROM notifications WHERE attempts <> 1")
    assert attempts == [(p.sink.killed_at, 2)]
    # At the sink: each order's "paid" email under one Message-ID, the same on the re-send, so a
    # receiving server or mail client shows it once; only the email in flight came twice.
    paid = p.sink.paid()
    by_order: dict[str, set[str]] = {}
    for message in paid:
        by_order.setdefault(str(message["Subject"]).split()[2], set()).add(str(message["Message-ID"]))
    assert sorted(by_order) == sorted(order[:8] for order in ids)
    assert all(len(message_ids) == 1 for message_ids in by_order.values())
    assert Counter(str(m["Message-ID"]) for m in paid) == Counter(
        {**{str(m["Message-ID"]): 1 for m in paid}, p.sink.killed_at: 2}
    )
    assert len({str(m["Message-ID"]) for m in p.sink.messages}) == 2 * CUSTOMERS + len(ids)
    # Everything else the batch promised holds too.
    await assert_every_order_paid_once(p, batch, emails_received_once=False)


async def test_orders_a_crash_left_pending_are_paid_once_without_the_clients_retry(platform: Platform) -> None:
    p = platform
    batch = await killed_mid_batch(p, "payments", lambda: mid_charge(p), retry=False)
    # Answered 503/504 and never retried. The client is not told which order stayed pending (the
    # gateway's 5xx name nothing internal, `gateway/edge.py`), so the database says: orders'
    # resumer pays them (it waits KEELSON_ORDERS_RESUME_AFTER_SECONDS, longer than this look).
    orders = p.uris["orders"]
    pending = {order for (order,) in rows(orders, "SELECT id::text FROM orders WHERE status = 'pending'")}
    assert pending, "no order was left pending by the crash"
    await wait_for(lambda: count(orders, "SELECT count(*) FROM orders WHERE status = 'pending'") == 0, within=60)
    resumed = rows(orders, "SELECT order_id::text FROM order_transitions WHERE cause = 'payment resumed'")
    assert pending <= {order for (order,) in resumed}
    # Refused outright (payments' breaker open before the order was made): no order, no charge.
    made = dict(rows(orders, "SELECT idempotency_key, id::text FROM orders"))
    assert all(not placed.order for placed in batch if placed.key not in made)
    accepted = [placed for placed in batch if placed.key in made]
    for placed in accepted:
        ((status,),) = rows(orders, "SELECT status FROM orders WHERE id = %s", made[placed.key])
        placed.order = {"id": made[placed.key], "status": status}
    await assert_every_order_paid_once(p, accepted)
