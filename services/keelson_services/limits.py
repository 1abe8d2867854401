"""Request limits every service enforces before a route runs: a body size limit (413) and JSON as
the only body content type (415), both in the one error format.

The size limit holds for chunked bodies too: the body is counted as it is read, and reading past
the limit raises an `ApiError` that FastAPI passes on unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keelson_services.errors import ApiError, error_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body exceeds {limit} bytes", details={"max_bytes": limit})


def is_json(content_type: str) -> bool:
    """`application/json`, or a `+json` type, with any parameters (`; charset=utf-8`)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is not None:
            if not length.isdigit():
                await error_response(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                return
            if int(length) > self.max_body_bytes:
                exc = too_large(self.max_body_bytes)
                await error_response(413, exc.code, exc.message, details=exc.details)(scope, receive, send)
                return
        has_body = chunked or (length is not None and int(length) > 0)
        if has_body and not is_json(headers.get(b"content-type", b"").decode("latin-1")):
            await error_response(
                415,
                "unsupported_media_type",
                "The request body must be JSON (Content-Type: application/json)",
            )(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)
            return message

        return counted
