"""The notifications part of the public API, forwarded to the service exposed at `/notifications`:
the caller's history, phone number, push devices and preferences; and, admins only, the
notification templates and their audit."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from keelson_services.contracts.notifications import (
    LOCALE_PATTERN,
    NAME_PATTERN,
    ActivateRequest,
    ChannelName,
    Device,
    DeviceList,
    DeviceRequest,
    NotificationList,
    PhoneRequest,
    PhoneStatus,
    PhoneVerifyRequest,
    PreferenceList,
    PreferencesUpdate,
    Preview,
    PreviewRequest,
    TemplateAuditList,
    TemplateSummaryList,
    TemplateVersion,
    TemplateVersionList,
    TemplateVersionRequest,
)
from keelson_services.identity import Identity
from keelson_services.services.gateway.api.routes.documented import answers
from keelson_services.services.gateway.deps import Admin, Caller, Gateway
from keelson_services.services.gateway.proxy import forward

AREA = "/notifications"
router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
admin_router = APIRouter(prefix="/api/v1/admin/notifications", tags=["admin"])
Name = Annotated[str, Path(pattern=NAME_PATTERN)]
Locale = Annotated[str, Path(pattern=LOCALE_PATTERN)]


async def _to_notifications(gateway: Gateway, request: Request, caller: Identity) -> Response:
    return await forward(gateway.client, request, service=gateway.routes.for_area(AREA).service, caller=caller)


@router.get("", summary="My notification history", response_model=None, responses=answers(200, NotificationList))
async def list_notifications(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.get("/phone", summary="My phone number", response_model=None, responses=answers(200, PhoneStatus))
async def get_phone(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.post(
    "/phone", summary="Set my phone number (sends a verification code by SMS)", status_code=202,
    response_model=None, responses=answers(202, PhoneStatus),
)  # fmt: skip
async def set_phone(body: PhoneRequest, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.post(
    "/phone/verify", summary="Verify my phone number with its code", response_model=None,
    responses=answers(200, PhoneStatus),
)  # fmt: skip
async def verify_phone(body: PhoneVerifyRequest, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.delete(
    "/phone", summary="Remove my phone number", status_code=204, response_model=None,
    responses=answers(204, None, "Removed"),
)  # fmt: skip
async def delete_phone(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.get("/devices", summary="My push devices", response_model=None, responses=answers(200, DeviceList))
async def list_devices(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.post(
    "/devices", summary="Register a push device (a Web Push subscription)", status_code=201, response_model=None,
    responses=answers(201, Device),
)  # fmt: skip
async def add_device(body: DeviceRequest, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.delete(
    "/devices/{device_id}", summary="Remove a push device", status_code=204, response_model=None,
    responses=answers(204, None, "Removed"),
)  # fmt: skip
async def delete_device(device_id: UUID, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.get(
    "/preferences", summary="My notification preferences", response_model=None, responses=answers(200, PreferenceList)
)
async def get_preferences(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@router.put(
    "/preferences", summary="Change my notification preferences", response_model=None,
    responses=answers(200, PreferenceList),
)  # fmt: skip
async def put_preferences(body: PreferencesUpdate, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_notifications(gateway, request, caller)


@admin_router.get(
    "/templates", summary="Notification templates (admin)", response_model=None,
    responses=answers(200, TemplateSummaryList),
)  # fmt: skip
async def list_templates(request: Request, gateway: Gateway, caller: Admin) -> Response:
    return await _to_notifications(gateway, request, caller)


@admin_router.get(
    "/templates/{channel}/{name}/{locale}", summary="A template's versions (admin)", response_model=None,
    responses=answers(200, TemplateVersionList),
)  # fmt: skip
async def template_versions(
    *, channel: ChannelName, name: Name, locale: Locale, request: Request, gateway: Gateway, caller: Admin
) -> Response:
    return await _to_notifications(gateway, request, caller)


@admin_router.post(
    "/templates/{channel}/{name}/{locale}/versions", summary="A new version of a template (admin)", status_code=201,
    response_model=None, responses=answers(201, TemplateVersion),
)  # fmt: skip
async def create_template_version(
    *,
    channel: ChannelName,
    name: Name,
    locale: Locale,
    body: TemplateVersionRequest,
    request: Request,
    gateway: Gateway,
    caller: Admin,
) -> Response:
    return await _to_notifications(gateway, request, caller)


@admin_router.post(
    "/templates/{channel}/{name}/{locale}/activate",
    summary="Make a version the active one: a rollback when it is older (admin)", response_model=None,
    responses=answers(200, TemplateVersion),
)  # fmt: skip
async def activate_template_version(
    *,
    channel: ChannelName,
    name: Name,
    locale: Locale,
    body: ActivateRequest,
    request: Request,
    gateway: Gateway,
    caller: Admin,
) -> Response:
    return await _to_notifications(gateway, request, caller)


@admin_router.post(
    "/preview/{channel}/{name}", summary="Render a template with sample data, sending nothing (admin)",
    response_model=None, responses=answers(200, Preview),
)  # fmt: skip
async def preview_template(
    *, channel: ChannelName, name: Name, body: PreviewRequest, request: Request, gateway: Gateway, caller: Admin
) -> Response:
    return await _to_notifications(gateway, request, caller)


@admin_router.get(
    "/audit", summary="Template changes, newest first (admin)", response_model=None,
    responses=answers(200, TemplateAuditList),
)  # fmt: skip
async def template_audit(
    request: Request,
    gateway: Gateway,
    caller: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return await _to_notifications(gateway, request, caller)
