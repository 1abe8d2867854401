"""The notifications service against a real broker, PostgreSQL and a local SMTP sink (aiosmtpd):
events become emails exactly once, a failing send is retried on the subscription's schedule and
dead-lettered, and a replay after the fix sends it once."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from e2e.kafka_access import options, security_of
from e2e.svc_platform import Shop, SmtpSink, kafka_bootstrap, read_topic, smtp_sink, wait_for
from e2e.svc_postgres import fresh_database
from keelson.devstack.ports import free_port
from keelson_services.messaging import EventProducer
from keelson_services.services.notifications.config import NotificationsConfig
from keelson_services.services.notifications.main import create_app
from keelson_services.services.notifications.senders import RecordingSender
from keelson_services.services.notifications.webpush import b64url

__all__ = ["kafka_bootstrap"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]
URL = "http://notifications.shop.svc:8080"


@dataclass
class Notifications:
    app: FastAPI
    http: httpx.AsyncClient
    uri: str
    push: RecordingSender
    producer: EventProducer

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.uri) as conn:
            return conn.execute(query, params).fetchall()

    async def publish(self, event: str, data: dict[str, Any], *, key: str, event_id: str | None = None) -> str:
        return (await self.producer.publish(event, data, key=key, event_id=event_id)).id


@asynccontextmanager
async def notifications(shop: Shop, smtp_env: dict[str, str]) -> AsyncIterator[Notifications]:
    push = RecordingSender("push")
    with fresh_database("notifications") as uri:
        settings = shop.settings("notifications", database_uri=uri)
        app = create_app(
            settings,
            config=NotificationsConfig.from_env(settings, smtp_env | {"KEELSON_SMTP_TIMEOUT_SECONDS": "2"}),
            senders={"push": push},
            configure_logs=False,
        )
        assert shop.bootstrap
        # The test stands in for the publishing services: the broker's admin may write every topic.
        producer = EventProducer(
            bootstrap_servers=shop.bootstrap, source="test", domain=shop.domain, **options(shop.bootstrap)
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=URL,
                headers=shop.caller_headers("gateway", "notifications"),
            ) as http,
            producer,
        ):
            yield Notifications(app, http, uri, push, producer)


def subscription() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": "https://push.example.net/x", "keys": {"p256dh": b64url(p256dh), "auth": b64url(b"a" * 16)}}


def registered(user_id: str, email: str, name: str = "Ada") -> dict[str, Any]:
    return {"user_id": user_id, "email": email, "name": name}


def paid(user_id: str, order_id: str, total: int = 2500) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "status": "paid", "currency": "EUR", "total_cents": total}


async def test_events_become_one_email_each_even_when_redelivered(kafka_bootstrap: str) -> None:
    shop = Shop(kafka_bootstrap)
    await shop.create_topics()
    with smtp_sink() as sink:
        async with notifications(shop, sink.env()) as svc:
            await svc.publish("user.registered", registered("u-1", "ada@example.com", "Ada <b>"), key="u-1")
            # Pushes go to users with a device (a Web Push subscription, here of a push service
            # that is never called: the push sender is a recording one).
            device = await svc.http.post(
                "/api/v1/notifications/devices", json=subscription(), headers={"X-User-Id": "u-1"}
            )
            assert device.status_code == 201, device.text
            order_id = str(uuid.uuid4())
            event_id = await svc.publish("order.paid", paid("u-1", order_id), key=order_id)
            await wait_for(lambda: len(sink.messages) == 2, within=30)
            welcome, receipt = sorted(sink.messages, key=lambda m: str(m["Subject"]))
            assert welcome["To"] == "ada@example.com" and welcome["Subject"] == "Welcome to shop, Ada <b>"
            assert receipt["Subject"] == f"Your order {order_id[:8]} is paid"
            text = receipt.get_payload()[0].get_payload(decode=True).decode()
            html = welcome.get_payload()[1].get_payload(decode=True).decode()
            assert "25.00 EUR" in text and order_id in text
            assert "Ada &lt;b&gt;" in html  # a name is text, never markup
            await wait_for(lambda: svc.push.sent, within=10)
            assert len(svc.push.sent) == 1 and svc.push.sent[0].recipient == "u-1"

            # The same event again (a producer retry, a replay): nothing more is sent.
            await svc.publish("order.paid", paid("u-1", order_id), key=order_id, event_id=event_id)
            sentinel = str(uuid.uuid4())
            await svc.publish("order.paid", paid("u-1", sentinel, total=100), key=order_id)
            await wait_for(lambda: len(sink.messages) == 3, within=30)
            await wait_for(lambda: len(svc.push.sent) == 2, within=10)
            subjects = [str(m["Subject"]) for m in sink.messages]
            assert subjects.count(f"Your order {order_id[:8]} is paid") == 1

            history = await svc.http.get("/api/v1/notifications", headers={"X-User-Id": "u-1"})
            assert history.status_code == 200
            items = history.json()["items"]
            assert {(i["channel"], i["template"], i["status"]) for i in items} == {
                ("email", "welcome", "sent"), ("email", "order_paid", "sent"), ("push", "order_paid", "sent"),
            }  # fmt: skip
            assert len(items) == 5 and all(i["event_type"].startswith(shop.domain) for i in items)
            assert (await svc.http.get("/api/v1/notifications", headers={"X-User-Id": "u-2"})).json()["items"] == []
            assert (await svc.http.get("/api/v1/notifications")).status_code == 401


async def keelson(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "keelson",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_a_failing_send_is_retried_then_dead_lettered_and_a_replay_sends_it_once(kafka_bootstrap: str) -> None:
    shop = Shop(kafka_bootstrap)
    await shop.create_topics()
    sink = SmtpSink(free_port())  # not started: the SMTP server is down
    sub = next(s for s in shop.settings("notifications").subscriptions() if s.topic == shop.topic("user.registered"))
    async with notifications(shop, sink.env()) as svc:
        event_id = await svc.publish("user.registered", registered("u-9", "grace@example.com", "Grace"), key="u-9")
        await wait_for(lambda: read_topic(kafka_bootstrap, sub.dlq), within=40, interval=0.5)
        ((status, attempts, error),) = svc.rows("SELECT status, attempts, error FROM notifications")
        assert (status, attempts) == ("failed", 4) and "ConnectionRefusedError" in error  # 1 try + 3 retries
        for retry in sub.retry_topics:
            assert len(await read_topic(kafka_bootstrap, retry)) == 1
        retried = svc.rows("SELECT count(*) FROM notifications WHERE status = 'sent'")
        assert retried == [(0,)] and sink.messages == []

        sink.start()  # the fix
        try:
            b = ("--bootstrap-server", kafka_bootstrap)
            for _ in range(2):  # replayed twice by mistake: still sent once
                # As the broker's admin (KEELSON_KAFKA_*): an operator's tool, not a service's.
                code, out = await keelson("dlq", "replay", sub.dlq, "--all", *b, env=security_of(kafka_bootstrap).env())
                assert code == 0, out
            await wait_for(lambda: sink.messages, within=20)
            # A later event on the same key (same partition) shows both replays were handled.
            await svc.publish("user.registered", registered("u-9", "grace@example.com", "Grace H."), key="u-9")
            await wait_for(lambda: len(sink.messages) == 2, within=20)
        finally:
            sink.stop()
        subjects = [str(m["Subject"]) for m in sink.messages]
        assert subjects == ["Welcome to shop, Grace", "Welcome to shop, Grace H."]
        rows = svc.rows("SELECT event_id, status, attempts FROM notifications ORDER BY created_at")
        assert rows[0] == (event_id, "sent", 5) and rows[1][1:] == ("sent", 1)


async def test_user_deleted_from_the_broker_erases_the_user(kafka_bootstrap: str) -> None:
    shop = Shop(kafka_bootstrap)  # the example's services: users publishes user.deleted, notifications consumes it
    await shop.create_topics()
    with smtp_sink() as sink:
        async with notifications(shop, sink.env()) as svc:
            await svc.publish("user.registered", registered("u-1", "ada@example.com", "Ada"), key="u-1")
            await svc.publish("user.registered", registered("u-2", "bob@example.com", "Bob"), key="u-2")
            device = await svc.http.post(
                "/api/v1/notifications/devices", json=subscription(), headers={"X-User-Id": "u-1"}
            )
            assert device.status_code == 201, device.text
            order_id = str(uuid.uuid4())
            await svc.publish("order.paid", paid("u-1", order_id), key=order_id)
            await wait_for(lambda: len(sink.messages) == 3, within=30)
            await wait_for(lambda: len(svc.push.sent) == 1, within=10)

            await svc.publish("user.deleted", {"user_id": "u-1"}, key="u-1")
            await wait_for(
                lambda: svc.rows("SELECT count(*) FROM recipients WHERE user_id = 'u-1'") == [(0,)], within=30
            )
            assert svc.rows("SELECT count(*) FROM push_devices") == [(0,)]
            rows = svc.rows(
                "SELECT user_id, recipient, subject, body, status FROM notifications WHERE event_type LIKE %s", "%paid"
            )
            assert sorted(rows) == [("", "", None, "", "sent")] * 2  # the email and the push: counted, not readable
            assert "ada@example.com" not in str(svc.rows("SELECT * FROM notifications"))
            assert svc.rows("SELECT email FROM recipients") == [("bob@example.com",)]
