"""The payments service against a real PostgreSQL (and, for its events, a real broker):
idempotency the way payment APIs do it, never a second charge, refunds, and the outbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from e2e.svc_platform import Shop, kafka_bootstrap, read_topic, wait_for
from e2e.svc_postgres import fresh_database
from keelson_services.services.payments.components import PaymentsComponents
from keelson_services.services.payments.config import PaymentsConfig
from keelson_services.services.payments.main import create_app

__all__ = ["kafka_bootstrap"]
pytestmark = pytest.mark.postgres
URL = "http://payments.shop.svc:8080"


@dataclass
class Payments:
    app: FastAPI
    http: httpx.AsyncClient
    uri: str

    @property
    def parts(self) -> PaymentsComponents:
        found: PaymentsComponents = self.app.state.payments
        return found

    async def charge(self, key: str | None, body: dict[str, Any]) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return await self.http.post("/api/v1/payments", json=body, headers=headers)

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.uri) as conn:
            return conn.execute(query, params).fetchall()

    def charges(self) -> int:
        (count,) = self.rows("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge'")[0]
        return int(count)


@asynccontextmanager
async def payments(shop: Shop | None = None, **config: Any) -> AsyncIterator[Payments]:
    shop = shop or Shop()
    with fresh_database("payments") as uri:
        app = create_app(
            shop.settings("payments", database_uri=uri),
            config=PaymentsConfig(**({"fake_latency_seconds": 0.05} | config)),
            configure_logs=False,
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=URL, headers=shop.caller_headers("orders", "payments")
            ) as http,
        ):
            yield Payments(app, http, uri)


def charge_body(amount: int = 2599, **extra: Any) -> dict[str, Any]:
    return {"order_id": str(uuid.uuid4()), "customer_id": "user-1", "amount_cents": amount, "currency": "EUR"} | extra


async def test_fifty_concurrent_requests_with_one_key_charge_exactly_once() -> None:
    async with payments() as svc:
        body = charge_body()
        answers = await asyncio.gather(*(svc.charge("order-1-charge", body) for _ in range(50)))
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {201, 409}, statuses
        originals = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
        assert len(originals) == 1, statuses
        (first,) = originals
        assert first.json()["status"] == "succeeded" and first.json()["amount_cents"] == 2599
        for answer in answers:
            if answer.status_code == 201:
                assert answer.content == first.content  # replays are byte for byte
            else:
                assert answer.json()["error"]["code"] == "request_in_progress"
                assert answer.headers["retry-after"] == "1"

        replay = await svc.charge("order-1-charge", body)
        assert replay.status_code == 201 and replay.content == first.content
        assert replay.headers["idempotent-replayed"] == "true"

        other = await svc.charge("order-1-charge", body | {"amount_cents": 1})
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"

        assert svc.charges() == 1
        assert svc.rows("SELECT count(*) FROM payments") == [(1,)]
        assert svc.rows("SELECT event, data->>'payment_id' FROM outbox") == [("payment.completed", first.json()["id"])]
        print(f"\n50 concurrent requests, one key: {dict(statuses)}; provider charges: {svc.charges()}")


async def test_a_missing_or_bad_key_and_a_bad_body_are_refused_without_a_charge() -> None:
    async with payments() as svc:
        missing = await svc.charge(None, charge_body())
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "idempotency_key_required"
        invalid = await svc.charge("x" * 300, charge_body())
        assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_idempotency_key"
        bad = await svc.charge("k", charge_body(amount=0))
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
        assert svc.charges() == 0


async def test_a_declined_charge_is_a_failed_payment_and_its_replay_too() -> None:
    async with payments(fake_failure_rate=1.0) as svc:
        body = charge_body()
        declined = await svc.charge("k-declined", body)
        assert declined.status_code == 201
        assert (declined.json()["status"], declined.json()["failure_code"]) == ("failed", "card_declined")
        again = await svc.charge("k-declined", body)
        assert again.content == declined.content and again.headers["idempotent-replayed"] == "true"
        assert svc.rows("SELECT event FROM outbox") == [("payment.failed",)]
        refund = await svc.http.post(
            f"/api/v1/payments/{declined.json()['id']}/refund", json={}, headers={"Idempotency-Key": "r"}
        )
        assert refund.status_code == 409 and refund.json()["error"]["code"] == "not_refundable"


async def test_a_run_that_crashed_after_the_provider_charged_is_finished_without_a_second_charge() -> None:
    async with payments() as svc:
        body = charge_body()
        key = "k-crash"
        # The first run: claimed the key, created the payment, the provider charged; then it died.
        await svc.parts.idempotency.begin("payments.charge", key, "lost")
        with psycopg.connect(svc.uri) as conn:
            conn.execute("DELETE FROM idempotency_keys")  # its claim fell free (lease over)
        payment = await svc.parts.payments.start(key, _request(body))
        await svc.parts.provider.charge(
            key=f"charge:{payment.id}", amount_cents=payment.amount_cents, currency="EUR", customer_id="user-1"
        )
        assert svc.charges() == 1 and payment.status == "processing"

        retried = await svc.charge(key, body)
        assert retried.status_code == 201 and retried.json()["id"] == str(payment.id)
        assert retried.json()["status"] == "succeeded"
        assert svc.charges() == 1
        assert svc.rows("SELECT count(*) FROM outbox") == [(1,)]


async def test_refunds_are_idempotent_and_never_exceed_the_charge() -> None:
    async with payments() as svc:
        paid = (await svc.charge("k-paid", charge_body(amount=1000))).json()
        refund_url = f"/api/v1/payments/{paid['id']}/refund"
        part = await svc.http.post(refund_url, json={"amount_cents": 400}, headers={"Idempotency-Key": "r-1"})
        assert part.status_code == 200
        assert (part.json()["status"], part.json()["refunded_cents"]) == ("partially_refunded", 400)
        again = await svc.http.post(refund_url, json={"amount_cents": 400}, headers={"Idempotency-Key": "r-1"})
        assert again.content == part.content
        too_much = await svc.http.post(refund_url, json={"amount_cents": 601}, headers={"Idempotency-Key": "r-2"})
        assert too_much.status_code == 422 and too_much.json()["error"]["details"]["refundable_cents"] == 600
        rest = await svc.http.post(refund_url, json={}, headers={"Idempotency-Key": "r-3"})
        assert (rest.json()["status"], rest.json()["refunded_cents"]) == ("refunded", 1000)
        assert [r["amount_cents"] for r in rest.json()["refunds"]] == [400, 600]
        listed = await svc.http.get("/api/v1/payments", params={"order_id": paid["order_id"]})
        assert [p["id"] for p in listed.json()["items"]] == [paid["id"]]
        refunds = svc.rows("SELECT count(*) FROM fake_provider_operations WHERE kind = 'refund'")
        assert refunds == [(2,)]


@pytest.mark.kafka
async def test_payment_events_are_published_after_the_commit_with_the_request_trace(kafka_bootstrap: str) -> None:
    shop = Shop(kafka_bootstrap)
    await shop.create_topics()
    trace_id = uuid.uuid4().hex
    async with payments(shop) as svc:
        answer = await svc.http.post(
            "/api/v1/payments",
            json=charge_body(),
            headers={"Idempotency-Key": "k-event", "traceparent": f"00-{trace_id}-{'1' * 16}-01"},
        )
        assert answer.status_code == 201
        await svc.parts.relay.wait_idle(within=20)
    (record,) = await wait_for(lambda: read_topic(kafka_bootstrap, shop.topic("payment.completed")), within=10)
    event = json.loads(record.value)
    assert event["type"] == shop.topic("payment.completed") and event["source"] == "payments"
    assert event["data"]["payment_id"] == answer.json()["id"] and record.key == answer.json()["order_id"].encode()
    assert dict(record.headers)["traceparent"].decode().split("-")[1] == trace_id


def _request(body: dict[str, Any]) -> Any:
    from keelson_services.contracts.payments import ChargeRequest

    return ChargeRequest.model_validate(body)
