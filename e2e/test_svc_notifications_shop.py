"""Notifications for real, through the gateway, with the whole shop in one process, a real Kafka
broker and PostgreSQL: a customer verifies a phone number and registers a push device; one paid
order then reaches them on all three channels by their real protocols (an email in the SMTP
sink, a push the local push service decrypted, an SMS the SMS provider recorded, after it had
failed twice); an opt-out leaves transactional messages alone; an admin's new template version
is what the next email says, its preview sends nothing, and the audit names them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from e2e.svc_platform import kafka_bootstrap, wait_for
from e2e.svc_shop import SKU, RunningShop, shop

__all__ = ["kafka_bootstrap", "shop"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]
PHONE = "+4915112345678"


async def order(shop: RunningShop, auth: dict[str, str]) -> dict[str, Any]:
    placed = await shop.client.post(
        "/api/v1/orders",
        json={"items": [{"sku": SKU, "quantity": 2}]},
        headers=auth | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert placed.status_code == 201 and placed.json()["status"] == "paid", placed.text
    body: dict[str, Any] = placed.json()
    return body


def subjects(shop: RunningShop, to: str) -> list[str]:
    return [str(m["Subject"]) for m in shop.sink.messages if m["To"] == to]


async def test_an_order_reaches_email_push_and_sms_and_templates_are_managed(shop: RunningShop) -> None:
    await shop.register("ada@example.com", name="Ada")
    auth = await shop.bearer("ada@example.com")
    # The verification link (the shop's customer verifies it) and the welcome.
    welcome = ["Confirm your email for shop", "Welcome to shop, Ada"]
    await wait_for(lambda: sorted(subjects(shop, "ada@example.com")) == welcome, within=30)

    # A phone number: validated, a code by SMS, verified.
    bad = await shop.client.post("/api/v1/notifications/phone", json={"phone": "12345"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
    started = await shop.client.post("/api/v1/notifications/phone", json={"phone": PHONE}, headers=auth)
    assert started.status_code == 202, started.text
    code = shop.sms.to(PHONE)[0].body.split("code is ")[1][:6]
    verified = await shop.client.post("/api/v1/notifications/phone/verify", json={"code": code}, headers=auth)
    assert verified.status_code == 200 and verified.json()["verified"], verified.text

    # A push device: a subscription of the local push service.
    device = shop.push.subscribe()
    added = await shop.client.post("/api/v1/notifications/devices", json=device.json(), headers=auth)
    assert added.status_code == 201, added.text
    listed = (await shop.client.get("/api/v1/notifications/devices", headers=auth)).json()
    assert [d["endpoint"] for d in listed["items"]] == [device.endpoint] and listed["application_server_key"]

    # Opt out of everything that may be opted out of; transactional messages still come.
    choices = [{"channel": c, "category": "marketing", "enabled": False} for c in ("email", "sms", "push")]
    assert (
        await shop.client.put("/api/v1/notifications/preferences", json={"items": choices}, headers=auth)
    ).status_code == 200
    locked = [{"channel": "sms", "category": "transactional", "enabled": False}]
    refused = await shop.client.put("/api/v1/notifications/preferences", json={"items": locked}, headers=auth)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "validation_failed"

    shop.sms.fail_next(2, 503)  # the SMS provider fails twice: the platform's retries get it through
    requests_before = shop.sms.requests
    paid = await order(shop, auth)
    short = paid["id"][:8]
    await wait_for(lambda: f"Your order {short} is paid" in subjects(shop, "ada@example.com"), within=30)

    def pushed() -> list[dict[str, Any]]:
        return [r.json() for r in shop.push.for_subscription(device) if short in r.json()["body"]]

    # order.created and order.paid: each decrypted by the push service, signed for its origin.
    await wait_for(lambda: len(pushed()) == 2, within=30)
    assert sorted(p["title"] for p in pushed()) == ["Order paid", "Order received"]
    assert all(r.claims["aud"] == shop.push.url for r in shop.push.for_subscription(device))
    await wait_for(lambda: [m for m in shop.sms.to(PHONE) if short in m.body], within=30)
    assert shop.sms.requests - requests_before == 3 and shop.push.refused == []
    assert [m.body for m in shop.sms.to(PHONE) if short in m.body] == [f"shop: your order {short} is paid (25.00 EUR)."]

    # The templates, as an admin.
    await shop.register("admin@example.com", name="Root")
    await shop.grant_admin("admin@example.com")
    admin = await shop.bearer("admin@example.com")
    base = "/api/v1/admin/notifications/templates/email/order_paid"
    assert (await shop.client.get("/api/v1/admin/notifications/templates", headers=auth)).status_code == 403
    invalid = await shop.client.post(f"{base}/en/versions", json={"subject": "{% if %}", "body": "x"}, headers=admin)
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "template_invalid"
    v2 = {
        "subject": "Paid, {{ recipient.name }}: {{ data.order_id | short }}",
        "body": "Thank you, {{ recipient.name }}.",
    }
    created = await shop.client.post(f"{base}/en/versions", json=v2, headers=admin)
    assert created.status_code == 201 and created.json()["version"] == 2, created.text
    sample = {"data": {"order_id": "0123456789"}, "recipient": {"name": "Eve\r\nBcc: x@example.com"}}
    preview = await shop.client.post("/api/v1/admin/notifications/preview/email/order_paid", json=sample, headers=admin)
    assert preview.status_code == 200 and preview.json()["subject"] == "Paid, Eve Bcc: x@example.com: 01234567"
    # Ada's mail only: the admin's welcome email may still be on its way.
    mails = len(subjects(shop, "ada@example.com"))
    second = await order(shop, auth)
    await wait_for(lambda: f"Paid, Ada: {second['id'][:8]}" in subjects(shop, "ada@example.com"), within=30)
    assert len(subjects(shop, "ada@example.com")) == mails + 1  # the preview sent nothing; the order one email
    assert not [m for m in shop.sink.messages if "x@example.com" in str(m)]  # the preview's sample went nowhere
    audit = (await shop.client.get("/api/v1/admin/notifications/audit", headers=admin)).json()["items"]
    assert [(a["action"], a["version"]) for a in audit[:2]] == [("activate", 2), ("create", 2)]
    assert audit[0]["actor"] == audit[1]["actor"] != "seed" and audit[0]["name"] == "order_paid"
