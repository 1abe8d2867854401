"""Paths under `/api/v1` the public API does not name, forwarded by longest route prefix to an
exposed service (a custom image, a new endpoint): authenticated, size- and type-checked, but not
schema-validated, and not in the OpenAPI document. A path the document does name, with a method
it does not document, is the gateway's own 405 with every documented method in `Allow`."""

from __future__ import annotations

import functools
import re

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from keelson_services.errors import ApiError, http_exception_handler
from keelson_services.services.gateway.deps import Caller, Gateway
from keelson_services.services.gateway.proxy import forward
from keelson_services.services.gateway.routing import PUBLIC_PREFIX

router = APIRouter()
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@functools.cache
def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


def documented_methods(request: Request) -> list[str]:
    """The methods the public API documents for the request's path; none for a path it does not name."""
    paths: dict[str, dict[str, object]] = request.app.openapi()["paths"]
    return sorted(
        method.upper()
        for template, operations in paths.items()
        if _path_pattern(template).fullmatch(request.url.path)
        for method in operations
        if method in _METHODS
    )


def method_not_allowed(allowed: list[str], method: str) -> ApiError:
    return ApiError(
        405,
        "method_not_allowed",
        f"{method} is not allowed here",
        details={"allowed": allowed},
        headers={"Allow": ", ".join(allowed)},
    )


def not_a_documented_path(request: Request) -> None:
    """A path the public API names, with a method it does not document (PUT /api/v1/users), is
    405, from the gateway itself. The catch-all would otherwise take it (the router prefers any
    full match over a path-only one) and forward it: the answer was the owning service's 405
    without `Allow`, or a 404 for the paths under `/auth` and `/admin`, which no route prefix
    names. Checked before authentication: the document is public anyway."""
    allowed = documented_methods(request)
    if allowed:
        raise method_not_allowed(allowed, request.method)


async def answer_405(request: Request, exc: Exception) -> Response:
    """The gateway's handler of every 405. Starlette's own (a method the catch-all does not take
    either, OPTIONS say) lists in `Allow` only the first route of the path, GET for
    `/api/v1/users/me`, while RFC 9110 wants all of them: on a documented path they come from
    the document."""
    allowed = documented_methods(request)
    if allowed:
        exc = method_not_allowed(allowed, request.method)
    return await http_exception_handler(request, exc)


@router.api_route(
    PUBLIC_PREFIX + "/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    dependencies=[Depends(not_a_documented_path)],
)
async def passthrough(rest: str, request: Request, gateway: Gateway, caller: Caller) -> Response:
    target = gateway.routes.match(request.url.path)
    return await forward(gateway.client, request, service=target.service, caller=caller)
