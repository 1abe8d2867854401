"""The app factory every service is built with, so that all of them behave alike:

- settings from the operator's env, JSON logs with trace ids (`observability.logs`);
- the observability middleware: W3C trace context, access log, HTTP metrics, 500s in the error
  format (`observability.middleware`);
- request limits: body size (413) and JSON-only bodies (415) (`limits`);
- one error format for every 4xx/5xx, validation errors included (`errors`), also in the
  OpenAPI document;
- `/healthz`, `/readyz` (the service's readiness checks) and `/metrics`.

A service passes its routers and a lifespan that opens its resources (database, migrations,
clients); readiness turns true only after that lifespan has started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.responses import JSONResponse, Response

from keelson_services.callers import CallerVerifier
from keelson_services.errors import ErrorResponse, error_response, install_error_handlers
from keelson_services.limits import DEFAULT_MAX_BODY_BYTES, RequestLimitsMiddleware
from keelson_services.observability.health import Readiness
from keelson_services.observability.logs import configure_logging
from keelson_services.observability.metrics import exposition
from keelson_services.observability.middleware import ObservabilityMiddleware
from keelson_services.settings import Settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

# Documented on every operation: any request can meet these. A "4XX" entry also keeps FastAPI
# from documenting its own 422 body, which the error handlers replace with the one format.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "The request was refused; see `error.code`."},
    "5XX": {"model": ErrorResponse, "description": "The service or one it depends on failed."},
}


def create_app(
    settings: Settings,
    *,
    title: str,
    description: str = "",
    version: str = "1.0.0",
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    readiness: Readiness | None = None,
    trust_identity_headers: bool = True,
    request_budget_seconds: float | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    configure_logs: bool = True,
) -> FastAPI:
    """`trust_identity_headers`: whether `X-User-Id`/`X-User-Roles` are believed (False on the
    gateway, which faces the public). `request_budget_seconds`: at the edge, the time a client's
    request may take in all, hops and retries included (see http.deadline). `configure_logs`: False
    in tests that inspect logging."""
    if configure_logs:
        configure_logging(settings.service, level=settings.log_level)
    ready = readiness or Readiness()

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            ready.started = True
            yield
            return
        async with lifespan(app):
            ready.started = True
            try:
                yield
            finally:
                ready.started = False

    app = FastAPI(title=title, description=description, version=version, lifespan=run, responses=COMMON_RESPONSES)
    app.state.settings = settings
    app.state.readiness = ready
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    _add_operational_routes(app, ready)
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=max_body_bytes)
    # Added last, so outermost: it sees every response, the limits' refusals included.
    app.add_middleware(
        ObservabilityMiddleware,
        service=settings.service,
        trust_identity_headers=trust_identity_headers,
        request_budget_seconds=request_budget_seconds,
        callers=CallerVerifier(settings.callers) if trust_identity_headers and settings.callers else None,
    )

    return app


def _add_operational_routes(app: FastAPI, ready: Readiness) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks = await ready.run()
        if all(result == "ok" for result in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return error_response(503, "not_ready", "The service is not ready", details={"checks": checks})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)
