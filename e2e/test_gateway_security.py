"""Hostile input through the gateway, with all five reference services behind it for real: bodies
that are not what the public API takes are refused (4xx, in the one error format) before anything
is stored, and SQL metacharacters in an order's strings are stored and read back verbatim.
(The users' fields: `test_svc_users_gateway.py`.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from e2e.svc_platform import kafka_bootstrap
from e2e.svc_shop import RunningShop, rows, shop

__all__ = ["kafka_bootstrap", "shop"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

MAX_BODY_BYTES = 65536  # the gateway's default (KEELSON_GATEWAY_MAX_BODY_BYTES)
ORDER = {"items": [{"sku": "SKU-1", "quantity": 1}], "currency": "EUR"}
REGISTRATION = {"email": "mallory@example.com", "password": "correct horse battery", "name": "Mallory"}


async def _chunks(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


# What each malformed body looks like, what it is sent as, and the refusal expected.
MALFORMED: list[tuple[str, dict[str, Any], int, str]] = [
    ("invalid JSON", {"content": b'{"items": [', "content_type": "application/json"}, 400, "malformed_json"),
    ("a JSON array", {"content": b"[]", "content_type": "application/json"}, 422, "validation_failed"),
    ("a JSON string", {"content": b'"an order"', "content_type": "application/json"}, 422, "validation_failed"),
    ("a JSON null", {"content": b"null", "content_type": "application/json"}, 422, "validation_failed"),
    ("no body", {"content": b"", "content_type": "application/json"}, 422, "validation_failed"),
    ("JSON as text/plain", {"json_as": "text/plain"}, 415, "unsupported_media_type"),
    ("JSON as a form", {"json_as": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("JSON without Content-Type", {"json_as": None}, 415, "unsupported_media_type"),
    (
        "an oversized body",
        {"content": b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}', "content_type": "application/json"},
        413,
        "payload_too_large",
    ),
    (
        "an oversized body, chunked",
        {"content": b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}', "content_type": "application/json", "chunked": True},
        413,
        "payload_too_large",
    ),
]


async def send_malformed(
    client: httpx.AsyncClient, path: str, how: dict[str, Any], valid: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    headers = dict(headers)
    if "json_as" in how:  # a valid body, under the wrong (or no) Content-Type
        content: Any = httpx.Request("POST", "http://x", json=valid).content
        if how["json_as"] is not None:
            headers["Content-Type"] = how["json_as"]
    else:
        content = how["content"]
        headers["Content-Type"] = how["content_type"]
        if how.get("chunked"):
            content = _chunks(content)
    request = client.build_request("POST", path, content=content, headers=headers)
    if "json_as" in how and how["json_as"] is None:
        assert "content-type" not in request.headers
    if how.get("chunked"):
        assert request.headers["transfer-encoding"] == "chunked" and "content-length" not in request.headers
    return await client.send(request)


def assert_error_format(response: httpx.Response, status: int, code: str, sent: str) -> None:
    assert response.status_code == status, (sent, response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, (sent, body)
    error = body["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"], (sent, body)
    assert isinstance(error["details"], dict), (sent, body)


def stored(shop: RunningShop) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a request could have left behind in the services' databases."""
    return {
        "users": rows(shop.uris["users"], "SELECT email FROM users ORDER BY email"),
        "users outbox": rows(shop.uris["users"], "SELECT count(*) FROM outbox"),
        "orders": rows(shop.uris["orders"], "SELECT count(*) FROM orders"),
        "orders outbox": rows(shop.uris["orders"], "SELECT count(*) FROM outbox"),
        "orders keys": rows(shop.uris["orders"], "SELECT count(*) FROM idempotency_keys"),
        "payments": rows(shop.uris["payments"], "SELECT count(*) FROM payments"),
    }


async def test_malformed_bodies_are_refused_in_the_error_format_and_nothing_is_stored(shop: RunningShop) -> None:
    await shop.register("ada@example.com")
    auth = await shop.bearer("ada@example.com")
    before = stored(shop)
    assert before["users"] == [("ada@example.com",)] and before["orders"] == [(0,)]

    for path, valid, headers in (
        ("/api/v1/orders", ORDER, auth),
        ("/api/v1/users", REGISTRATION, {}),
    ):
        for what, how, status, code in MALFORMED:
            # A fresh key each time: the refusal must be the body's doing, not a replay's.
            sent = headers | {"Idempotency-Key": str(uuid.uuid4())} if path.endswith("orders") else headers
            response = await send_malformed(shop.client, path, how, valid, sent)
            assert_error_format(response, status, code, f"{what} to {path}")

    assert stored(shop) == before
    # The same requests, well-formed, do go through (so the refusals above were the bodies').
    placed = await shop.client.post("/api/v1/orders", json=ORDER, headers=auth | {"Idempotency-Key": "ok-1"})
    assert placed.status_code == 201, placed.text
    assert (await shop.client.post("/api/v1/users", json=REGISTRATION)).status_code == 201


async def test_sql_metacharacters_in_every_string_of_an_order_are_stored_verbatim(shop: RunningShop) -> None:
    await shop.register("bobby@example.com")
    auth = await shop.bearer("bobby@example.com")
    skus = [
        "Robert'); DROP TABLE orders;-- \\ %s %(x)s $1 $$ \" `",
        "x' OR '1'='1",
        "'; UPDATE orders SET status = 'paid', total_cents = 0 --",
        "\\x00 \\' E'\\\\' /* */ ; COMMIT; DELETE FROM idempotency_keys",
    ]
    # Idempotency-Key takes printable ASCII without spaces (its documented pattern).
    key = "k');DROP/**/TABLE/**/orders;--\"%s$1\\'||'"
    for n, sku in enumerate(skus):
        await shop.add_product(sku, price_cents=100 * (n + 1))
    listed = await shop.client.get("/api/v1/products?limit=100")
    assert {p["sku"] for p in listed.json()["items"]} >= set(skus)
    order = {"items": [{"sku": sku, "quantity": n + 1} for n, sku in enumerate(skus)], "currency": "EUR"}
    priced = [
        {"sku": sku, "name": f"Product {sku}", "quantity": n + 1, "unit_price_cents": 100 * (n + 1)}
        for n, sku in enumerate(skus)
    ]
    placed = await shop.client.post("/api/v1/orders", json=order, headers=auth | {"Idempotency-Key": key})
    assert placed.status_code == 201, placed.text
    created = placed.json()
    assert [item["sku"] for item in created["items"]] == skus and created["status"] == "paid"
    assert created["total_cents"] == sum(100 * n * n for n in range(1, len(skus) + 1))

    # Read back through the gateway: one order, and the list.
    read = await shop.client.get(f"/api/v1/orders/{created['id']}", headers=auth)
    assert read.status_code == 200 and read.json()["items"] == priced
    listed = await shop.client.get("/api/v1/orders", headers=auth)
    assert [o["id"] for o in listed.json()["items"]] == [created["id"]]
    # The key was stored verbatim too: the same key and body is the same order, replayed.
    replayed = await shop.client.post("/api/v1/orders", json=order, headers=auth | {"Idempotency-Key": key})
    assert replayed.status_code == 201 and replayed.json()["id"] == created["id"]

    # The tables are intact and hold the strings as sent.
    orders = shop.uris["orders"]
    assert rows(orders, "SELECT idempotency_key, items, status, total_cents FROM orders") == [
        (key, priced, "paid", created["total_cents"])
    ]
    assert rows(orders, "SELECT count(*) FROM idempotency_keys WHERE key = %s", key) == [(1,)]
    (event,) = rows(orders, "SELECT data FROM outbox WHERE event = 'order.created'")
    assert [item["sku"] for item in event[0]["items"]] == skus
    assert rows(shop.uris["payments"], "SELECT count(*), sum(amount_cents) FROM payments") == [
        (1, created["total_cents"])
    ]
