"""The payments service: charges and refunds through a payment-provider adapter, idempotent by
key; `payment.completed` / `payment.failed` through the transactional outbox.

Start-up opens the pool, applies its migrations (its own, the idempotency store's and the
outbox's) and starts the outbox relay and the purger of old idempotency keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from keelson_services import events, idempotency, lifecycle
from keelson_services.app import create_app as create_service_app
from keelson_services.db import load_migrations
from keelson_services.observability.health import Readiness
from keelson_services.services.payments.api.routes import ROUTERS
from keelson_services.services.payments.components import PaymentsComponents
from keelson_services.services.payments.config import PaymentsConfig
from keelson_services.services.payments.provider import PaymentProvider
from keelson_services.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    config: PaymentsConfig | None = None,
    env: Mapping[str, str] | None = None,
    provider: PaymentProvider | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or Settings.from_env(env)
    config = config or PaymentsConfig.from_env(env)
    parts = PaymentsComponents.build(settings, config, provider=provider)
    readiness = Readiness()
    readiness.add("database", parts.db.ping)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        migrations = [
            *load_migrations("keelson_services.services.payments", "payments"),
            *idempotency.migrations(),
            *events.migrations(),
        ]
        async with lifecycle.running(parts.db, migrations, [parts.relay, parts.purger]):
            yield

    app = create_service_app(
        settings,
        title="Keelson payments",
        description="Charges and refunds, idempotent by key; payment events through an outbox.",
        routers=ROUTERS,
        lifespan=lifespan,
        readiness=readiness,
        configure_logs=configure_logs,
    )
    app.state.payments = parts
    return app
