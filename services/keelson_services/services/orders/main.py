"""The orders service: the catalogue (products, prices, stock; `catalogue.py`), orders and their
state machine; pays through payments synchronously (the platform's timeout, circuit breaker and
retries), publishes `order.created`, `order.paid`
and `order.cancelled` through the transactional outbox, and settles orders from
`payment.completed` / `payment.failed`.

Start-up opens the pool, applies its migrations (its own, the idempotency store's and the
outbox's), and starts the outbox relay, the consumer, the resumer of stalled orders and the purger of old
idempotency keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from keelson_services import events, idempotency, lifecycle
from keelson_services.app import create_app as create_service_app
from keelson_services.db import load_migrations
from keelson_services.http.breaker import MonotonicClock
from keelson_services.observability.health import Readiness
from keelson_services.services.orders.api.routes import ROUTERS
from keelson_services.services.orders.components import OrdersComponents
from keelson_services.services.orders.config import OrdersConfig
from keelson_services.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    config: OrdersConfig | None = None,
    env: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: MonotonicClock | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or Settings.from_env(env)
    config = config or OrdersConfig.from_env(env)
    parts = OrdersComponents.build(settings, config, transport=transport, clock=clock)
    readiness = Readiness()
    readiness.add("database", parts.db.ping)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        migrations = [
            *load_migrations("keelson_services.services.orders", "orders"),
            *idempotency.migrations(),
            *events.migrations(),
        ]
        async with lifecycle.running(
            parts.db, migrations, [parts.relay, parts.consumer, parts.resumer, parts.purger], close=[parts.client]
        ):
            yield

    app = create_service_app(
        settings,
        title="Keelson orders",
        description="Orders: placed with an Idempotency-Key, paid through payments, announced as events.",
        routers=ROUTERS,
        lifespan=lifespan,
        readiness=readiness,
        configure_logs=configure_logs,
    )
    app.state.orders = parts
    return app
