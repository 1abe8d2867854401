"""The caller's own channels: `/api/v1/notifications/phone` (a number proven by a code sent to
it by SMS; only a verified number gets SMS) and `/api/v1/notifications/devices` (Web Push
subscriptions)."""

from __future__ import annotations

import math
import uuid
from urllib.parse import urlsplit
from uuid import UUID

import jinja2
from fastapi import APIRouter, Response

from keelson_services.contracts.notifications import (
    Device,
    DeviceList,
    DeviceRequest,
    PhoneRequest,
    PhoneStatus,
    PhoneVerifyRequest,
)
from keelson_services.deps import CurrentIdentity
from keelson_services.errors import ApiError
from keelson_services.messaging.headers import describe_error
from keelson_services.services.notifications.contacts import MAX_DEVICES, Verified
from keelson_services.services.notifications.deps import Components
from keelson_services.services.notifications.senders import Outgoing
from keelson_services.services.notifications.template_store import locales
from keelson_services.services.notifications.webpush import SubscriptionKeyError, client_keys

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
VERIFICATION_TEMPLATE = "phone_verification"


def _invalid(location: list[str], message: str) -> ApiError:
    """A 422 in the shape request validation gives (`errors.validation_details`)."""
    details = {"errors": [{"location": ["body", *location], "message": message, "type": "value_error"}]}
    return ApiError(422, "validation_failed", "The request is not valid", details=details)


@router.get("/phone", response_model=PhoneStatus, summary="My phone number")
async def get_phone(caller: CurrentIdentity, parts: Components) -> PhoneStatus:
    return PhoneStatus.model_validate(await parts.contacts.phone(caller.user_id))


@router.post("/phone", response_model=PhoneStatus, status_code=202, summary="Set my phone number (sends a code)")
async def set_phone(body: PhoneRequest, caller: CurrentIdentity, parts: Components) -> PhoneStatus:
    """Sends a 6-digit code to the number by SMS; the number is used once verified with it."""
    code = await parts.contacts.start_verification(caller.user_id, body.phone)
    if not isinstance(code, str):
        wait = math.ceil(code)
        raise ApiError(
            429, "rate_limited", f"A code was sent moments ago; a new one in {wait} s",
            details={"retry_after_seconds": wait}, headers={"Retry-After": str(wait)},
        )  # fmt: skip
    recipient = await parts.notifications.recipient(caller.user_id)
    chain = locales(recipient.locale if recipient else None)
    found = await parts.templates.find("sms", VERIFICATION_TEMPLATE, chain)
    if found is None:
        raise ApiError(503, "unavailable", "No template for verification codes is configured")
    minutes = max(1, int(parts.config.phone_code_ttl_seconds // 60))
    context = {
        "data": {},
        "recipient": recipient.context() if recipient else {"user_id": caller.user_id, "name": "", "locale": "en"},
        "event": {"id": "phone-verification", "type": "phone.verification"},
        "platform": parts.notifier.platform,
        "code": code,
        "minutes": minutes,
    }
    try:
        rendered = parts.renderer.render_source("sms", VERIFICATION_TEMPLATE, found.source, context)
    except (jinja2.TemplateError, ValueError, TypeError) as exc:
        await parts.contacts.cancel_verification(caller.user_id)
        # An admin's version that does not render: the reason, for them; never the code.
        raise ApiError(
            503, "unavailable", "The verification message cannot be made; try again later",
            details={"reason": f"template sms/{VERIFICATION_TEMPLATE} v{found.version}: {type(exc).__name__}"},
        ) from None  # fmt: skip
    try:
        await parts.senders["sms"].send(Outgoing(uuid.uuid4(), body.phone, rendered))
    except Exception as exc:
        await parts.contacts.cancel_verification(caller.user_id)
        # The reason, never the message: it holds the code.
        raise ApiError(
            502, "sms_not_sent", "The verification code could not be sent; try again later",
            details={"reason": describe_error(exc)},
        ) from exc  # fmt: skip
    return PhoneStatus.model_validate(await parts.contacts.phone(caller.user_id))


@router.post("/phone/verify", response_model=PhoneStatus, summary="Verify my phone number with its code")
async def verify_phone(body: PhoneVerifyRequest, caller: CurrentIdentity, parts: Components) -> PhoneStatus:
    result = await parts.contacts.verify(caller.user_id, body.code)
    if result.outcome is Verified.NONE_PENDING:
        raise ApiError(409, "no_verification_pending", "No code is pending: set the phone number first")
    if result.outcome is Verified.EXPIRED:
        raise ApiError(410, "code_expired", "The code has expired: set the phone number again for a new one")
    if result.outcome is Verified.WRONG:
        raise ApiError(422, "code_wrong", "The code is wrong", details={"attempts_left": result.attempts_left})
    return PhoneStatus.model_validate(await parts.contacts.phone(caller.user_id))


@router.delete("/phone", status_code=204, summary="Remove my phone number")
async def delete_phone(caller: CurrentIdentity, parts: Components) -> Response:
    await parts.contacts.remove_phone(caller.user_id)
    return Response(status_code=204)


@router.get("/devices", response_model=DeviceList, summary="My push devices")
async def list_devices(caller: CurrentIdentity, parts: Components) -> DeviceList:
    rows = await parts.contacts.list_devices(caller.user_id)
    key = parts.vapid.public_key if parts.vapid else None
    return DeviceList(items=[Device.model_validate(r) for r in rows], application_server_key=key)


@router.post("/devices", response_model=Device, status_code=201, summary="Register a push device")
async def add_device(body: DeviceRequest, caller: CurrentIdentity, parts: Components) -> Device:
    endpoint = urlsplit(body.endpoint)
    schemes = ("https", "http") if parts.config.insecure_push_endpoints else ("https",)
    if endpoint.scheme not in schemes or not endpoint.hostname or endpoint.username or endpoint.fragment:
        raise _invalid(["endpoint"], f"must be an {' or '.join(schemes)} URL of a push service, without credentials")
    try:
        client_keys(body.keys.p256dh, body.keys.auth)
    except SubscriptionKeyError as exc:
        raise _invalid(["keys"], str(exc)) from None
    row = await parts.contacts.add_device(
        caller.user_id, endpoint=body.endpoint, p256dh=body.keys.p256dh, auth=body.keys.auth
    )
    if row is None:
        raise ApiError(
            409, "too_many_devices", f"At most {MAX_DEVICES} push devices per user: remove one first",
            details={"max_devices": MAX_DEVICES},
        )  # fmt: skip
    return Device.model_validate(row)


@router.delete("/devices/{device_id}", status_code=204, summary="Remove a push device")
async def delete_device(device_id: UUID, caller: CurrentIdentity, parts: Components) -> Response:
    if not await parts.contacts.remove_device(caller.user_id, device_id):
        raise ApiError(404, "not_found", "No such device of yours")
    return Response(status_code=204)
