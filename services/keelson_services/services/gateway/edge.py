"""What crosses the platform's edge at the gateway, in both directions.

In: only the public API. The platform's route carries paths under `/api` alone
(`operator/keelson/render/routes.py`); as a second line, a request that came through a proxy
(it carries `X-Forwarded-For` or `Forwarded`) for any other path, `/metrics`, `/readyz`,
`/healthz`, the docs, is answered 404 here. The kubelet's probes and the Prometheus scrape reach
the pod directly and carry neither header.

Out: no error names an internal service or an exception. Every 5xx leaving the gateway, its own
(a downstream unreachable, timed out, its circuit open) or a service's passed on, is rebuilt
from its status alone: the error code if it is a plain snake_case word, a generic message, and
of the details only the retry delay. `X-Keelson-Failed-Service`, which the services tell each
other which of them failed with, never leaves.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keelson_services.errors import DEFAULT_CODES, error_body, error_response
from keelson_services.http.errors import FAILED_SERVICE_HEADER

PUBLIC_PREFIX = "/api/"
PROXY_HEADERS = (b"x-forwarded-for", b"forwarded")
_INTERNAL_HEADERS = frozenset({FAILED_SERVICE_HEADER.encode(), b"content-length"})
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PUBLIC_MESSAGES = {
    500: "An unexpected error occurred",
    502: "The platform could not complete the request",
    503: "The platform is unavailable for this request; retry later",
    504: "The platform did not complete the request in time",
}


def public_error(status: int, body: bytes) -> dict[str, Any]:
    """The body a 5xx leaves the platform with, whatever the body inside was."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    found: dict[str, Any] = error if isinstance(error, dict) else {}
    code = found.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        code = DEFAULT_CODES.get(status, "internal_error")
    details = found.get("details")
    details = details if isinstance(details, dict) else {}
    retry = details.get("retry_after_seconds")
    kept = {"retry_after_seconds": retry} if isinstance(retry, int) and not isinstance(retry, bool) else {}
    return error_body(code, PUBLIC_MESSAGES.get(status, "The platform could not complete the request"), kept)


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        proxied = any(name.lower() in PROXY_HEADERS for name, _ in scope.get("headers", ()))
        if proxied and not scope["path"].startswith(PUBLIC_PREFIX):
            await error_response(404, "not_found", "Not found")(scope, receive, send)
            return
        await self.app(scope, receive, self._public(send))

    @staticmethod
    def _public(send: Send) -> Send:
        held: Message | None = None
        chunks: list[bytes] = []

        async def public_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _INTERNAL_HEADERS]
                length = [(k, v) for k, v in message.get("headers", ()) if k.lower() == b"content-length"]
                message = {**message, "headers": headers}
                if message["status"] < 500:
                    message["headers"] = headers + length
                    await send(message)
                else:
                    held = message  # the body decides nothing, but it must be read before it is replaced
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = json.dumps(public_error(held["status"], b"".join(chunks))).encode()
            headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-type"]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return public_send
