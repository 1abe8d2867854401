"""Secrets never leak: every secret value a platform's life creates (database passwords before and
after a rotation, the key-encryption key, Kafka credentials when the platform has them, the
PostgreSQL admin's, the ServiceAccount tokens services call each other with, a customer's access
and refresh tokens) is searched for in every log the stack keeps (the operator's, every service
process's, the data services'), in every Event of the cluster and in every platform's spec and
status: zero hits.

A value is searched as written and as a URI would carry it (percent-encoded), and so is its
base64 form in logs (a Secret's data as the API returns it)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from e2e.kube import Kube, eventually
from e2e.svc_platform import link_in_mailbox
from keelson.databases.rotation import ROTATE_ANNOTATION
from keelson.devstack import services
from keelson.devstack.paths import repo_root
from keelson.devstack.stack import LocalStack

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.postgres]

EXAMPLE = repo_root() / "examples" / "ecommerce.yaml"
# Keys of a Secret that name things rather than keep them secret.
NOT_SECRET_KEYS = {"host", "port", "user", "username", "database", "dbname", "namespace", "ca.crt", "bootstrap"}
SHORTEST = 8  # shorter values would match by chance (and no generated secret is that short)


def _secret_values(kube: Kube, namespaces: list[str]) -> dict[str, str]:
    """Every secret value in these namespaces' Secrets, named `<ns>/<secret>[<key>]` (never the value)."""
    found: dict[str, str] = {}
    for namespace in namespaces:
        listed = json.loads(kube.run("get", "secrets", "-n", namespace, "-o", "json").stdout)
        for secret in listed["items"]:
            for key, encoded in (secret.get("data") or {}).items():
                value = base64.b64decode(encoded).decode(errors="replace")
                if key not in NOT_SECRET_KEYS and len(value) >= SHORTEST:
                    found[f"{namespace}/{secret['metadata']['name']}[{key}]"] = value
    return found


def _forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), base64.b64encode(value.encode()).decode()}


def _leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    return [
        f"{name} found in {where}"
        for name, value in secrets.items()
        for where, text in places.items()
        if any(form in text for form in _forms(value))
    ]


def _logs(stack: LocalStack) -> dict[str, str]:
    return {str(path): path.read_text(errors="replace") for path in sorted((stack.state_dir / "logs").glob("*.log"))}


def test_no_secret_value_reaches_a_log_an_event_or_a_status(stack: LocalStack, kube: Kube, namespace: str) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["domain"] = f"shop{uuid.uuid4().hex[:8]}"
    stack.apply_manifest(yaml.safe_dump(doc), namespace)
    eventually(lambda: (kube.condition("shop", namespace) or {}).get("status") == "True", timeout=180, what="Ready")
    secrets = _secret_values(kube, [namespace, "default"])
    assert any("password" in name for name in secrets), sorted(secrets)  # the search has something to find

    # A rotation: the old password and the new one.
    old = json.loads(kube.run("get", "secret", "-n", namespace, "-o", "json", "shop-orders-db").stdout)
    kube.run("annotate", "msp", "shop", "-n", namespace, f"{ROTATE_ANNOTATION}=orders@{uuid.uuid4().hex[:8]}")
    eventually(
        lambda: (
            json.loads(kube.run("get", "secret", "-n", namespace, "-o", "json", "shop-orders-db").stdout)["data"]
            != old["data"]
        ),
        timeout=90,
        what="the orders password rotated",
    )
    eventually(lambda: (kube.condition("shop", namespace) or {}).get("status") == "True", timeout=120, what="Ready")
    secrets |= {f"{k} (now)": v for k, v in _secret_values(kube, [namespace]).items()}

    # The services run, and a customer's journey goes through them.
    try:
        url = services.run_platform(stack.state_dir, stack.kubectl(), "shop", namespace, progress=print)
        # An admin stocks the catalogue: sent to orders as the gateway forwards an admin's request.
        audience = f"keelson.dev/{namespace}/shop/orders"
        as_gateway = kube.run("create", "token", "gateway", "-n", namespace, f"--audience={audience}").stdout.strip()
        secrets["the gateway's call token to orders"] = as_gateway
        orders = services.service_urls(stack.state_dir, "shop", namespace)["orders"]
        admin = {"Authorization": f"Bearer {as_gateway}", "X-User-Id": "admin", "X-User-Roles": "admin"}
        product = {"sku": "SKU-1", "name": "Anchor", "price_cents": 500, "currency": "EUR", "stock": 10}
        stocked = httpx.post(f"{orders}/api/v1/admin/products", json=product, headers=admin, timeout=30)
        assert stocked.status_code == 201, stocked.text
        email, password = f"ada.{uuid.uuid4().hex[:8]}@example.com", f"pw-{uuid.uuid4().hex}"
        secrets["the customer's password"] = password
        with httpx.Client(base_url=url, timeout=30) as gateway:
            registered = gateway.post("/api/v1/users", json={"email": email, "password": password, "name": "Ada"})
            assert registered.status_code == 201, registered.text
            # The emailed link's token is a secret too: it goes to the inbox and nowhere else.
            verification = eventually(
                lambda: link_in_mailbox(stack.state_dir / "mail", email),
                timeout=60,
                what="the verification email at the sink",
            )
            secrets["the email verification token"] = verification
            verified = gateway.post("/api/v1/auth/verify-email", json={"token": verification})
            assert verified.status_code == 204, verified.text
            login = gateway.post("/api/v1/auth/token", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            tokens: dict[str, Any] = login.json()
            secrets["the access token"] = tokens["access_token"]
            if tokens.get("refresh_token"):
                secrets["the refresh token"] = tokens["refresh_token"]
            bearer = {"Authorization": f"Bearer {tokens['access_token']}", "Idempotency-Key": str(uuid.uuid4())}
            body = {"items": [{"sku": "SKU-1", "quantity": 1}]}
            placed = gateway.post("/api/v1/orders", json=body, headers=bearer)
            assert placed.status_code == 201, placed.text
            # A wrong password and a forged token: refusals log, and must not log what they refused.
            wrong = f"wrong-{uuid.uuid4().hex}"
            secrets["a wrong password"] = wrong
            assert gateway.post("/api/v1/auth/token", json={"email": email, "password": wrong}).status_code == 401
        call_tokens = sorted((stack.state_dir / "tokens").rglob("*"))
        minted = {f"call token {p.relative_to(stack.state_dir)}": p.read_text() for p in call_tokens if p.is_file()}
        assert minted, "dev run minted no call tokens"
        secrets |= minted
    finally:
        services.stop_platform(stack.state_dir, "shop", namespace, progress=print)

    places = _logs(stack)
    assert any("operator" in Path(p).name for p in places), sorted(places)
    places["Events"] = kube.run("get", "events", "-A", "-o", "json").stdout
    platforms = json.loads(kube.run("get", "msp", "-A", "-o", "json").stdout)["items"]
    places["platforms' spec and status"] = json.dumps([(p.get("spec"), p.get("status")) for p in platforms])
    assert _leaks(secrets, places) == []
