"""The demo's customer journey against services started by `keelson dev run`: browse the
catalogue, register, log in and order through the gateway ($KEELSON_GATEWAY_URL), then show the
order, its payment (from the payments service, which the gateway does not expose), its events on
their Kafka topics and the email that reached the local SMTP sink (<state>/mail/).

Usage: python scripts/demo_journey.py PLATFORM NAMESPACE DOMAIN (after `eval "$(keelson dev env)"`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from keelson.devstack.services import service_urls

TIMEOUT = 30.0


def show(title: str, value: Any) -> None:
    print(f"--- {title}")
    print(json.dumps(value, indent=2) if not isinstance(value, str) else value)


async def events_of(bootstrap: str, topics: list[str], order_id: str) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(found) < len(topics) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for record in batch:
                    event = json.loads(record.value)
                    if event.get("data", {}).get("order_id") == order_id:
                        found[record.topic] = event
    finally:
        await consumer.stop()
    return found


def mail_about(mail_dir: Path, needle: str) -> list[Path]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = [p for p in sorted(mail_dir.glob("*.eml")) if needle in p.read_text(errors="replace")]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def main(platform: str, namespace: str, domain: str) -> int:
    state_dir = Path(os.environ["KEELSON_STATE_DIR"])
    email, password = f"ada.{uuid.uuid4().hex[:6]}@example.com", "correct horse battery"
    with httpx.Client(base_url=os.environ["KEELSON_GATEWAY_URL"], timeout=TIMEOUT) as gateway:
        registered = gateway.post("/api/v1/users", json={"email": email, "password": password, "name": "Ada"})
        registered.raise_for_status()
        show(f"POST /api/v1/users -> {registered.status_code}", registered.json())
        login = gateway.post("/api/v1/auth/token", json={"email": email, "password": password})
        login.raise_for_status()
        print(f"--- POST /api/v1/auth/token -> {login.status_code} (access and refresh tokens)")
        auth = {"Authorization": f"Bearer {login.json()['access_token']}", "Idempotency-Key": str(uuid.uuid4())}
        catalogue = gateway.get("/api/v1/products")  # no login needed
        catalogue.raise_for_status()
        show(f"GET /api/v1/products -> {catalogue.status_code}", catalogue.json())
        in_stock = [p for p in catalogue.json()["items"] if p["available"] >= 1 and p["price_cents"] > 0]
        if not in_stock:
            print("the catalogue has nothing in stock: an admin adds products (POST /api/v1/admin/products)")
            return 1
        # The shop prices the order from its catalogue: the client names SKUs and quantities only.
        body = {"items": [{"sku": in_stock[0]["sku"], "quantity": 1}]}
        placed = gateway.post("/api/v1/orders", json=body, headers=auth)
        placed.raise_for_status()
        order = placed.json()
        show(f"POST /api/v1/orders -> {placed.status_code}", order)

    payments = service_urls(state_dir, platform, namespace)["payments"]
    payment = httpx.get(f"{payments}/api/v1/payments/{order['payment_id']}", timeout=TIMEOUT)
    payment.raise_for_status()
    show(f"the payment (payments service, {payments})", payment.json())

    topics = [f"{domain}.{event}" for event in ("order.created", "payment.completed", "order.paid")]
    found = asyncio.run(events_of(os.environ["KEELSON_KAFKA_BOOTSTRAP"], topics, order["id"]))
    for topic in topics:
        show(f"event on {topic}", found.get(topic, "(none)"))

    mails = mail_about(state_dir / "mail", order["id"][:8])
    for path in mails:
        message = message_from_bytes(path.read_bytes())
        part = message if not message.is_multipart() else message.get_payload(0)
        text = part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        show(f"email at the sink ({path})", f"To: {message['To']}\nSubject: {message['Subject']}\n\n{text}")
    ok = order["status"] == "paid" and len(found) == len(topics) and bool(mails)
    print("journey complete" if ok else "journey INCOMPLETE", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
