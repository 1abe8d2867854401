"""The whole shop in one process, for the tests that go through the gateway: all five reference
services (httpx.ASGITransport between them), each on its own PostgreSQL database, with a real
Kafka broker (its topics created as the operator plans them), a local SMTP sink, a local SMS
provider (Twilio's API) and a local Web Push service that decrypts what it receives.

`running_shop` is the one place that starts it; the `shop` fixture runs it on the test's event
loop, and a test that must drive the gateway from another thread (schemathesis' ASGI client) can
run it on a loop of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from e2e.svc_platform import Shop, SmtpSink, smtp_sink
from e2e.svc_postgres import fresh_database
from e2e.svc_processes import TEST_KEK
from keelson.devstack.smssink import SmsProvider
from keelson_services.contracts.catalogue import CreateProductRequest
from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.main import create_app as create_gateway
from keelson_services.services.notifications.config import NotificationsConfig
from keelson_services.services.notifications.main import create_app as create_notifications
from keelson_services.services.orders.catalogue import Catalogue
from keelson_services.services.orders.main import create_app as create_orders
from keelson_services.services.payments.main import create_app as create_payments
from keelson_services.services.users.components import UsersComponents
from keelson_services.services.users.main import create_app as create_users
from keelson_services.services.users.manage import set_role
from tests.fakes.push_service import PushService, vapid_private_key_pem
from tests.unit.svc_helpers import HostRouter

# Cheap hashing: these tests are about behaviour, not hashing cost.
FAST_HASHING = {
    "KEELSON_USERS_ARGON2_TIME_COST": "1",
    "KEELSON_USERS_ARGON2_MEMORY_KIB": "1024",
    "KEELSON_KEY_ENCRYPTION_KEY": TEST_KEK,  # what the operator puts in the database Secret
}
DATABASES = ("users", "orders", "payments", "notifications")
PASSWORD = "correct horse battery"
# The catalogue every shop starts with: orders name SKUs, the orders service prices them.
SKU, PRICE_CENTS = "SKU-1", 1250
CATALOGUE_ADMIN = {"X-User-Id": "catalogue-admin", "X-User-Roles": "admin"}


def rows(uri: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri) as conn:
        return conn.execute(query, params).fetchall()


@dataclass
class RunningShop:
    platform: Shop
    client: httpx.AsyncClient  # the public entry: the gateway
    uris: dict[str, str]  # each service's database
    sink: SmtpSink
    apps: dict[str, FastAPI]
    transport: HostRouter  # between the services: swap one's transport to take it down
    sms: SmsProvider
    push: PushService

    async def register(
        self, email: str, password: str = PASSWORD, name: str = "Ada", *, verify: bool = True
    ) -> dict[str, Any]:
        """A new account; with `verify`, its email verified as its owner would (the link from the
        email at the sink), so that it may order."""
        response = await self.client.post("/api/v1/users", json={"email": email, "password": password, "name": name})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        if verify:
            await self.verify(email)
            body["email_verified"] = True
        return body

    async def verify(self, email: str) -> None:
        token = await self.sink.link_token(email, "verify-email")
        verified = await self.client.post("/api/v1/auth/verify-email", json={"token": token})
        assert verified.status_code == 204, verified.text

    async def bearer(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.client.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def add_product(
        self, sku: str, *, price_cents: int, stock: int = 10_000, currency: str = "EUR"
    ) -> dict[str, Any]:
        """Add a product as an admin would: `POST /api/v1/admin/products` on the orders service,
        called as the gateway calls it (with an admin's identity) so that no account or email is
        made for it; `test_gateway_fuzz.py` goes through the gateway with a real admin."""
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.apps["orders"]),
            base_url="http://orders",
            headers=self.platform.caller_headers("gateway", "orders") | CATALOGUE_ADMIN,
        ) as orders:
            product = {"sku": sku, "name": f"Product {sku}", "price_cents": price_cents, "currency": currency}
            added = await orders.post("/api/v1/admin/products", json=product | {"stock": stock})
        assert added.status_code == 201, added.text
        body: dict[str, Any] = added.json()
        return body

    async def grant_admin(self, email: str) -> None:
        """What `users grant-admin EMAIL` does: the only way to the first admin."""
        users: UsersComponents = self.apps["users"].state.users
        assert await set_role(users.db, email, "admin", granted=True)


@asynccontextmanager
async def running_shop(
    kafka_bootstrap: str, *, gateway_env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningShop]:
    """`gateway_env`: the gateway's own settings (`KEELSON_GATEWAY_*`), e.g. a higher rate limit."""
    platform = Shop(kafka_bootstrap)
    await platform.create_topics()
    with ExitStack() as dbs, smtp_sink() as sink, SmsProvider() as sms, PushService() as push:
        uris = {name: dbs.enter_context(fresh_database(name)) for name in DATABASES}
        apps: dict[str, FastAPI] = {}
        transport = HostRouter()
        apps["users"] = create_users(
            platform.settings("users", database_uri=uris["users"]), env=FAST_HASHING, configure_logs=False
        )
        apps["payments"] = create_payments(
            platform.settings("payments", database_uri=uris["payments"]), env={}, configure_logs=False
        )
        apps["orders"] = create_orders(
            platform.settings("orders", database_uri=uris["orders"]), env={}, transport=transport, configure_logs=False
        )
        settings = platform.settings("notifications", database_uri=uris["notifications"])
        channels = sink.env() | sms.env() | {
            "KEELSON_VAPID_PRIVATE_KEY": vapid_private_key_pem(),
            "KEELSON_PUSH_INSECURE_ENDPOINTS": "true",  # the local push service speaks plain HTTP
        }  # fmt: skip
        apps["notifications"] = create_notifications(
            settings, config=NotificationsConfig.from_env(settings, channels), configure_logs=False
        )
        gateway_settings = platform.settings("gateway")
        apps["gateway"] = create_gateway(
            gateway_settings,
            config=GatewayConfig.from_env(gateway_settings, dict(gateway_env or {})),
            transport=transport,
            configure_logs=False,
        )
        transport.by_service.update({name: httpx.ASGITransport(app=app) for name, app in apps.items()})
        async with AsyncExitStack() as running:
            for name in DATABASES:  # the gateway's lifespan last: it calls the others
                await running.enter_async_context(apps[name].router.lifespan_context(apps[name]))
            await running.enter_async_context(apps["gateway"].router.lifespan_context(apps["gateway"]))
            client = await running.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["gateway"]), base_url="http://gateway")
            )
            # The catalogue the shop opens with, written as the admin API writes it but without a
            # request: no span, no log line, no account for tests that count those.
            catalogue: Catalogue = apps["orders"].state.orders.catalogue
            product = {"sku": SKU, "name": f"Product {SKU}", "price_cents": PRICE_CENTS, "currency": "EUR"}
            await catalogue.create(CreateProductRequest.model_validate(product | {"stock": 10_000}))
            yield RunningShop(platform, client, uris, sink, apps, transport, sms, push)


@pytest.fixture
async def shop(kafka_bootstrap: str) -> AsyncIterator[RunningShop]:
    async with running_shop(kafka_bootstrap) as running:
        yield running
