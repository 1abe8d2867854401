"""The notifications part of the public API, forwarded to the service exposed at `/notifications`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from keelson_services.contracts.notifications import NotificationList
from keelson_services.services.gateway.api.routes.documented import answers
from keelson_services.services.gateway.deps import Caller, Gateway
from keelson_services.services.gateway.proxy import forward

AREA = "/notifications"
router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", summary="My notification history", response_model=None, responses=answers(200, NotificationList))
async def list_notifications(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await forward(gateway.client, request, service=gateway.routes.for_area(AREA).service, caller=caller)
