"""Forwarding a public request to the service that serves it, through the resilient client
(timeout, circuit breaker, retries of safe requests, trace propagation).

Only headers the services need cross the gateway, in either direction: identity comes from the
verified token and nothing else (a client's own `X-User-Id` never passes), hop-by-hop and
internal headers stay behind.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from keelson_services.http import ServiceClient
from keelson_services.identity import Identity

# Request headers a service may need from the client.
FORWARDED_REQUEST_HEADERS = (
    "content-type",
    "accept",
    "accept-language",
    "idempotency-key",
    "if-match",
    "if-none-match",
)
# Response headers a client may need from a service (the gateway adds its own trace headers).
FORWARDED_RESPONSE_HEADERS = (
    "content-type",
    "location",
    "retry-after",
    "cache-control",
    "etag",
    "idempotent-replayed",
    "www-authenticate",
    "allow",  # RFC 9110: a 405 lists the methods the resource has
)


async def forward(client: ServiceClient, request: Request, *, service: str, caller: Identity | None) -> Response:
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    if caller is not None:
        headers.update(caller.headers())
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    if request.url.query:
        path = f"{path}?{request.url.query}"
    body = await request.body()
    upstream = await client.request(service, request.method, path, content=body or None, headers=headers)
    kept = {name: upstream.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in upstream.headers}
    return Response(content=upstream.content, status_code=upstream.status_code, headers=kept)
