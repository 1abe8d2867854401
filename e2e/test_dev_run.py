"""`keelson dev run` on the local stack: the e-commerce example applied as `keelson dev apply` does,
its reference services run as local processes with the env the operator rendered, and a customer
registers, verifies their email with the link the sink received, logs in and orders through the
gateway; the order's email reaches the local SMTP sink."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from e2e.kube import Kube, eventually
from e2e.svc_platform import link_in_mailbox
from keelson.devstack import services
from keelson.devstack.stack import LocalStack

pytestmark = pytest.mark.cluster
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ecommerce.yaml"
BENCH_LOAD = Path(__file__).resolve().parents[1] / "bench" / "load.py"


def test_dev_run_serves_the_journey_through_the_gateway(stack: LocalStack, kube: Kube, namespace: str) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["domain"] = f"shop{uuid.uuid4().hex[:8]}"  # topics of its own on the shared broker
    stack.apply_manifest(yaml.safe_dump(doc), namespace)
    eventually(
        lambda: (kube.condition("shop", namespace) or {}).get("status") == "True",
        timeout=180,
        what="platform Ready",
    )
    try:
        url = services.run_platform(stack.state_dir, stack.kubectl(), "shop", namespace, progress=print)
        assert url == services.gateway_url(stack.state_dir)
        assert stack.env()["KEELSON_GATEWAY_URL"] == url
        local = services.service_urls(stack.state_dir, "shop", namespace)

        def token(account: str, callee: str) -> dict[str, str]:
            audience = f"keelson.dev/{namespace}/shop/{callee}"
            minted = kube.run("create", "token", account, "-n", namespace, f"--audience={audience}").stdout.strip()
            return {"Authorization": f"Bearer {minted}"}

        # An admin stocks the catalogue (sent to orders as the gateway forwards an admin's request).
        admin = token("gateway", "orders") | {"X-User-Id": "admin", "X-User-Roles": "admin"}
        product = {"sku": "SKU-1", "name": "Anchor", "price_cents": 500, "currency": "EUR", "stock": 100}
        stocked = httpx.post(f"{local['orders']}/api/v1/admin/products", json=product, headers=admin, timeout=30)
        assert stocked.status_code == 201, stocked.text

        email, password = f"ada.{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
        with httpx.Client(base_url=url, timeout=30) as gateway:
            registered = gateway.post("/api/v1/users", json={"email": email, "password": password, "name": "Ada"})
            assert registered.status_code == 201, registered.text

            verification = eventually(
                lambda: link_in_mailbox(stack.state_dir / "mail", email),
                timeout=60,
                what="the verification email at the sink",
            )
            assert gateway.post("/api/v1/auth/verify-email", json={"token": verification}).status_code == 204
            login = gateway.post("/api/v1/auth/token", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}", "Idempotency-Key": str(uuid.uuid4())}
            assert [p["sku"] for p in gateway.get("/api/v1/products").json()["items"]] == ["SKU-1"]  # no login
            body = {"items": [{"sku": "SKU-1", "quantity": 2}]}
            placed = gateway.post("/api/v1/orders", json=body, headers=headers)
            assert placed.status_code == 201, placed.text
            order = placed.json()
            assert (order["status"], order["total_cents"]) == ("paid", 1000)
            # A phone number, verified with the code the local SMS provider wrote to <state>/sms/.
            auth = {"Authorization": headers["Authorization"]}
            number = f"+4915{uuid.uuid4().int % 10**8:08d}"
            assert gateway.post("/api/v1/notifications/phone", json={"phone": number}, headers=auth).status_code == 202
            (sms,) = [
                m for p in (stack.state_dir / "sms").glob("*.json") if (m := json.loads(p.read_text()))["to"] == number
            ]
            code = sms["body"].split("code is ")[1][:6]
            verified = gateway.post("/api/v1/notifications/phone/verify", json={"code": code}, headers=auth)
            assert verified.status_code == 200 and verified.json()["verified"], verified.text

        # Between the services, a call proves which service sends it with a ServiceAccount token the
        # API server minted (TokenRequest, as the kubelet does for the projected volume).
        path = f"/api/v1/payments/{order['payment_id']}"

        forged = {"X-User-Id": registered.json()["id"], "X-User-Roles": "customer,admin"}
        assert httpx.get(f"{local['payments']}{path}", headers=forged, timeout=30).status_code == 401
        assert httpx.get(f"{local['orders']}/api/v1/orders", headers=forged, timeout=30).status_code == 401
        # The gateway is a real caller, but not of payments (only orders declares `calls: [payments]`).
        not_declared = httpx.get(f"{local['payments']}{path}", headers=token("gateway", "payments"), timeout=30)
        assert not_declared.status_code == 401 and "not a declared caller" in not_declared.text
        # A token for orders cannot be replayed to payments.
        replayed = httpx.get(f"{local['payments']}{path}", headers=token("orders", "orders"), timeout=30)
        assert replayed.status_code == 401 and "another service" in replayed.text
        payment = httpx.get(f"{local['payments']}{path}", headers=token("orders", "payments"), timeout=30)
        assert payment.status_code == 200, payment.text

        mail = stack.state_dir / "mail"
        eventually(
            lambda: [p for p in mail.glob("*.eml") if f"Your order {order['id'][:8]} is paid" in p.read_text()],
            timeout=60,
            what="the order's email at the sink",
        )

        # bench/load's scenario doubles as a smoke test: one checked journey, its payment, its email.
        smoke = subprocess.run(
            [sys.executable, str(BENCH_LOAD), "--smoke", "--state-dir", str(stack.state_dir), "--namespace", namespace],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "smoke: order" in smoke.stdout
    finally:
        services.stop_platform(stack.state_dir, "shop", namespace, progress=print)
    assert stack.env().get("KEELSON_GATEWAY_URL") != url
    prefix = services.process_name(namespace, "shop", "")
    assert not [n for n in services.processes.running_names(stack.state_dir) if n.startswith(prefix)]
