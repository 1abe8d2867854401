"""The ASGI middleware every service runs outermost: it continues or starts the request's trace,
makes it (and, behind the gateway, the caller's identity and deadline) current for the request's
task, refuses internal calls that do not prove which declared service sent them (`callers`),
answers with the trace in `traceparent` and `X-Trace-Id`, writes the access log and the HTTP
metrics (and, when spans are exported, the request's SERVER span: `spans`), and turns an unhandled
exception into a logged 500 in the one error format.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: it adds no task or stream per request,
which matters on the gateway's hot path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keelson_services import identity
from keelson_services.callers import CallerRefusedError, CallerVerifier
from keelson_services.errors import error_response
from keelson_services.http import deadline
from keelson_services.observability import spans, tracing
from keelson_services.observability.metrics import server_metrics

log = logging.getLogger("keelson.access")

# Probes and scrapes: frequent, and uninteresting unless something is wrong.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


def _quiet(scope: Scope, status: int) -> bool:
    return scope["path"] in QUIET_PATHS and status < 400


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        trust_identity_headers: bool = True,
        request_budget_seconds: float | None = None,
        callers: CallerVerifier | None = None,
    ) -> None:
        """`trust_identity_headers`: False on the gateway, whose callers are the public.
        `request_budget_seconds`: on the gateway, every request's whole budget (deadline.at_edge).
        `callers`: behind the gateway, the check that a call comes from a declared service; its
        identity headers are believed only then. Probes and /metrics stay open."""
        self.app = app
        self.callers = callers
        self.service = service
        self.trust_identity_headers = trust_identity_headers
        self.request_budget_seconds = request_budget_seconds
        self.metrics = server_metrics()
        self.spans = spans.recorder(service)  # None unless spans are exported

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        parent = tracing.parse(headers.get(tracing.TRACEPARENT), headers.get(tracing.TRACESTATE))
        context = parent.child() if parent is not None else tracing.TraceContext.new()
        refused: CallerRefusedError | None = None
        if self.callers is not None and scope["path"] not in QUIET_PATHS:
            try:
                self.callers.verify(headers.get("authorization"))
            except CallerRefusedError as err:
                refused = err
        trusted = self.trust_identity_headers and refused is None
        caller = identity.Identity.from_headers(headers) if trusted else None
        # A public client's timeout header is its own business; inside, it is the caller's wait.
        # At the edge, the request's budget starts here, and every hop and retry fits inside it.
        now = time.monotonic()
        if self.trust_identity_headers:
            until = deadline.from_headers(headers, now)
        elif self.request_budget_seconds is not None:
            until = deadline.at_edge(self.request_budget_seconds, now)
        else:
            until = None
        trace_headers = [
            (b"traceparent", context.header().encode()),
            (b"x-trace-id", context.trace_id.encode()),
        ]
        status = 500
        started = False

        async def send_traced(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message["headers"] = [*message.get("headers", ()), *trace_headers]
            await send(message)

        begin = time.perf_counter()
        start_ns = time.time_ns() if self.spans is not None else 0
        error: str | None = None
        self.metrics.in_flight.labels(self.service).inc()
        with tracing.activated(context), identity.activated(caller), deadline.activated(until):
            try:
                if refused is not None:
                    log.warning("refused a call: %s", refused.reason, extra=self._fields(scope, 401, begin))
                    refusal = error_response(401, refused.code, refused.message, headers=refused.headers)
                    await refusal(scope, receive, send_traced)
                    return
                await self.app(scope, receive, send_traced)
            except Exception as exc:
                error = type(exc).__name__
                log.exception("unhandled error", extra=self._fields(scope, 500, begin))
                if not started:
                    response = error_response(500, "internal_error", "An unexpected error occurred")
                    await response(scope, receive, send_traced)
                    return
                raise
            finally:
                self.metrics.in_flight.labels(self.service).dec()
                self._record(scope, status, begin)
                if self.spans is not None and not _quiet(scope, status):
                    route = _route(scope)
                    self.spans.server(
                        context,
                        parent,
                        method=scope["method"],
                        path=scope["path"],
                        route=None if route == "other" else route,
                        status=status,
                        start_ns=start_ns,
                        error=error,
                    )

    def _fields(self, scope: Scope, status: int, begin: float) -> dict[str, Any]:
        return {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - begin) * 1000, 2),
        }

    def _record(self, scope: Scope, status: int, begin: float) -> None:
        elapsed = time.perf_counter() - begin
        route = _route(scope)
        self.metrics.requests.labels(self.service, scope["method"], route, str(status)).inc()
        self.metrics.duration.labels(self.service, scope["method"], route).observe(elapsed)
        level = logging.DEBUG if _quiet(scope, status) else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s %s %s", scope["method"], scope["path"], status, extra=self._fields(scope, status, begin))
