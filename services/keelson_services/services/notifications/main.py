"""The notifications service: consumes user, order and payment events with the retrying consumer,
renders them per channel (jinja2, sandboxed, templates managed in its database), sends email over
SMTP, SMS over a provider's HTTP API and push over Web Push, records every notification and serves
each user's history, phone number, push devices and preferences, and the templates' admin API.

Start-up opens the pool, applies its migrations and starts the consumer (in the background: the
HTTP API serves even while the brokers are away)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from keelson_services import lifecycle
from keelson_services.app import create_app as create_service_app
from keelson_services.db import load_migrations
from keelson_services.observability.health import Readiness
from keelson_services.services.notifications.api.routes import ROUTERS
from keelson_services.services.notifications.components import NotificationsComponents
from keelson_services.services.notifications.config import NotificationsConfig
from keelson_services.services.notifications.rendering import Channel
from keelson_services.services.notifications.senders import Sender
from keelson_services.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    config: NotificationsConfig | None = None,
    env: Mapping[str, str] | None = None,
    senders: Mapping[Channel, Sender] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or Settings.from_env(env)
    config = config or NotificationsConfig.from_env(settings, env)
    parts = NotificationsComponents.build(settings, config, senders=senders, transport=transport)
    readiness = Readiness()
    readiness.add("database", parts.db.ping)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        migrations = load_migrations("keelson_services.services.notifications", "notifications")
        async with lifecycle.running(
            parts.db, migrations, [parts.consumer], close=[parts.client], prepare=parts.seed_templates
        ):
            yield

    app = create_service_app(
        settings,
        title="Keelson notifications",
        description="Emails, SMS and pushes for order, payment and user events; each user's history.",
        routers=ROUTERS,
        lifespan=lifespan,
        readiness=readiness,
        configure_logs=configure_logs,
    )
    app.state.notifications = parts
    return app
