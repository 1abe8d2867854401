"""The users service: accounts, passwords, tokens and their signing keys.

Start-up opens the database pool, applies the service's migrations and makes sure a signing key
exists before the replica reports ready. The events the platform declares among its publishes
(`user.registered`, `user.verification-requested`, `user.password-reset-requested`,
`user.deleted`) are written to the transactional outbox and a relay publishes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from keelson_services import events, lifecycle
from keelson_services.app import create_app as create_service_app
from keelson_services.db import load_migrations
from keelson_services.observability.health import Readiness
from keelson_services.services.users.api.routes import ROUTERS
from keelson_services.services.users.components import UsersComponents
from keelson_services.services.users.config import UsersConfig
from keelson_services.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    config: UsersConfig | None = None,
    env: Mapping[str, str] | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or Settings.from_env(env)
    config = config or UsersConfig.from_env(settings, env)
    parts = UsersComponents.build(config, settings.require_database(), settings)
    readiness = Readiness()
    readiness.add("database", parts.db.ping)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        migrations = load_migrations("keelson_services.services.users", "users")
        if parts.relay is not None:
            migrations += events.migrations()
        async with lifecycle.running(parts.db, migrations, [parts.relay], prepare=parts.keys.prepare):
            yield

    app = create_service_app(
        settings,
        title="Keelson users",
        description="Accounts, login, tokens (EdDSA JWTs, JWKS) and roles.",
        routers=ROUTERS,
        lifespan=lifespan,
        readiness=readiness,
        configure_logs=configure_logs,
    )
    app.state.users = parts
    return app
