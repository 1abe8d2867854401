"""The gateway: the platform's only public entry. It authenticates callers (JWTs from the users
service, verified against its JWKS), rate-limits them, validates requests against the public
API, forwards them with identity and trace headers, and documents the public API in its OpenAPI
document (`/openapi.json`, `/docs`).

With a database (the platform's `database:` for the gateway) it keeps the rate limits there, shared
by all its replicas (`shared_limits.py`), and applies its one migration at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from keelson_services import lifecycle
from keelson_services.app import create_app as create_service_app
from keelson_services.db import load_migrations
from keelson_services.http.breaker import MonotonicClock
from keelson_services.periodic import Periodic
from keelson_services.services.gateway.api.routes import ROUTERS
from keelson_services.services.gateway.api.routes.passthrough import answer_405
from keelson_services.services.gateway.components import GatewayComponents
from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.edge import EdgeMiddleware
from keelson_services.services.gateway.shared_limits import PURGE_INTERVAL_SECONDS, SharedLimiter
from keelson_services.settings import Settings

DESCRIPTION = """The public API of the platform. Errors are always
`{"error": {"code", "message", "details"}}`. Authenticate with `Authorization: Bearer <access token>`
from `POST /api/v1/auth/token`; requests are rate-limited per user (per address when anonymous),
answering 429 with `Retry-After`."""
log = logging.getLogger("keelson.gateway")


def create_app(
    settings: Settings | None = None,
    *,
    config: GatewayConfig | None = None,
    env: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: MonotonicClock | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or Settings.from_env(env)
    config = config or GatewayConfig.from_env(settings, env)
    parts = GatewayComponents.build(settings, config, transport=transport, clock=clock)

    purger = None
    if isinstance(parts.limiter, SharedLimiter):
        purger = Periodic("rate-limit purge", PURGE_INTERVAL_SECONDS, parts.limiter.purge, log)
    migrations = load_migrations("keelson_services.services.gateway", "gateway") if parts.db is not None else []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lifecycle.running(parts.db, migrations, [purger], close=[parts.client, parts.verifier.keys]):
            yield

    app = create_service_app(
        settings,
        title="Keelson platform API",
        description=DESCRIPTION,
        routers=ROUTERS,
        lifespan=lifespan,
        trust_identity_headers=False,  # the public sends these; only verified tokens count
        request_budget_seconds=settings.http_timeout_seconds,  # the design's 5 s, for the whole request
        max_body_bytes=config.max_body_bytes,
        configure_logs=configure_logs,
    )
    app.add_exception_handler(405, answer_405)
    app.add_middleware(EdgeMiddleware)  # outermost: it sees every answer that leaves the platform
    app.state.gateway = parts
    return app
