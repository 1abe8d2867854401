"""Paths under `/api/v1` the public API does not name, forwarded by longest route prefix to an
exposed service (a custom image, a new endpoint): authenticated, size- and type-checked, but not
schema-validated, and not in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from keelson_services.services.gateway.deps import Caller, Gateway
from keelson_services.services.gateway.proxy import forward
from keelson_services.services.gateway.routing import PUBLIC_PREFIX

router = APIRouter()


@router.api_route(
    PUBLIC_PREFIX + "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def passthrough(rest: str, request: Request, gateway: Gateway, caller: Caller) -> Response:
    target = gateway.routes.match(request.url.path)
    return await forward(gateway.client, request, service=target.service, caller=caller)
