"""Bodies of the notifications part of the public API (`/notifications`): the caller's history,
phone number, push devices and preferences, and the template admin API. The notifications service
implements these and may extend them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StrictBool, field_validator

from keelson_services.contracts.orders import NOT_A_BOOLEAN


class Notification(BaseModel):
    id: UUID
    event_type: str = Field(description="The event it announced, e.g. `ecommerce.order.paid`.")
    channel: Literal["email", "sms", "push"]
    template: str
    status: Literal["sending", "sent", "failed"]
    subject: str | None = Field(None, description="The email's subject or the push's title.")
    recipient: str = Field(description="Where it went: an email address, a phone number, or the user (push).")
    created_at: datetime
    sent_at: datetime | None = None


class NotificationList(BaseModel):
    items: list[Notification]


# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
E164_PATTERN = r"^\+[1-9]\d{6,14}$"
# A browser's `PushSubscription.toJSON()` keys: base64url of 65 and 16 bytes, padding optional.
P256DH_PATTERN, AUTH_PATTERN = r"^[A-Za-z0-9_-]{87}=?$", r"^[A-Za-z0-9_-]{22}(==)?$"
# The bodies of the public API are at most 64 KiB: a template's parts fit, even in UTF-8.
MAX_TEMPLATE_TEXT, MAX_TEMPLATE_HTML = 8_000, 12_000
# PostgreSQL text cannot hold NUL: refused here (422), not at the database (500).
NO_NUL = r"^[^\u0000]*$"
Version = Annotated[int, Field(ge=1, le=1_000_000), NOT_A_BOOLEAN]


class PhoneRequest(BaseModel):
    phone: str = Field(
        max_length=32, description="In E.164 form, e.g. `+4915112345678`.", json_schema_extra={"pattern": E164_PATTERN}
    )

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        # The schema's pattern, checked here for a message that says what is wanted.
        if not re.fullmatch(E164_PATTERN, value):
            raise ValueError("a phone number in E.164 form is expected, e.g. +4915112345678")
        return value


class PhoneVerifyRequest(BaseModel):
    code: str = Field(pattern=r"^\d{6}$", description="The 6-digit code sent to the number by SMS.")


class PhoneStatus(BaseModel):
    phone: str | None = Field(description="The number SMS go to, once verified.")
    verified: bool
    pending: str | None = Field(None, description="A number waiting for its code.")


class PushKeys(BaseModel):
    p256dh: str = Field(pattern=P256DH_PATTERN, description="The device's P-256 public key, base64url (RFC 8291).")
    auth: str = Field(pattern=AUTH_PATTERN, description="The device's 16-byte auth secret, base64url.")


class DeviceRequest(BaseModel):
    """A browser's `PushSubscription.toJSON()`."""

    endpoint: str = Field(
        max_length=2048,
        pattern=r"^https?://[^\s/?#@\u0000]+(/[^\s#\u0000]*)?$",
        description="The push service's URL for this device: https (http only where the service allows it).",
    )
    keys: PushKeys


class Device(BaseModel):
    id: UUID
    endpoint: str
    created_at: datetime


class DeviceList(BaseModel):
    items: list[Device]
    application_server_key: str | None = Field(
        None, description="The VAPID public key (base64url) to subscribe with; none when push is not configured."
    )


Category = Literal["transactional", "marketing"]
ChannelName = Literal["email", "sms", "push"]


class Preference(BaseModel):
    channel: ChannelName
    category: Category
    enabled: bool
    locked: bool = Field(False, description="Transactional messages are always sent: not a choice.")


class PreferenceList(BaseModel):
    items: list[Preference]


class PreferenceChoice(BaseModel):
    channel: ChannelName
    category: Literal["marketing"] = Field(description="Transactional messages are always sent: not a choice.")
    enabled: StrictBool  # JSON's 0 is no false


class PreferencesUpdate(BaseModel):
    items: list[PreferenceChoice] = Field(max_length=32)


# The template admin API (admins only).

LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|\d{3}))?$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class TemplateSummary(BaseModel):
    name: str
    channel: ChannelName
    locale: str
    active_version: int | None
    latest_version: int
    updated_at: datetime


class TemplateSummaryList(BaseModel):
    items: list[TemplateSummary]


class TemplateVersion(BaseModel):
    name: str
    channel: ChannelName
    locale: str
    version: int
    subject: str | None
    body: str
    html: str | None
    active: bool
    created_by: str
    created_at: datetime


class TemplateVersionList(BaseModel):
    items: list[TemplateVersion]


class TemplateVersionRequest(BaseModel):
    subject: str | None = Field(
        None, max_length=500, pattern=NO_NUL, description="Email subject or push title (jinja2)."
    )
    body: str = Field(min_length=1, max_length=MAX_TEMPLATE_TEXT, pattern=NO_NUL, description="Plain text (jinja2).")
    html: str | None = Field(
        None, max_length=MAX_TEMPLATE_HTML, pattern=NO_NUL, description="Email only: the HTML body (autoescaped)."
    )
    activate: StrictBool = Field(True, description="Make it the active version at once.")


class ActivateRequest(BaseModel):
    version: Version


class PreviewRequest(BaseModel):
    locale: str = Field("en", pattern=LOCALE_PATTERN)
    version: Version | None = Field(None, description="A version of `locale`; the active one with fallback if unset.")
    data: dict[str, Any] = Field(default_factory=dict, description="The event's data to render with.")
    recipient: dict[str, Any] = Field(default_factory=dict, description="Overrides of the sample recipient.")


class Preview(BaseModel):
    name: str
    channel: ChannelName
    locale: str
    version: int
    subject: str | None
    body: str
    html: str | None


class TemplateAuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: Literal["seed", "create", "activate"]
    name: str
    channel: ChannelName
    locale: str
    version: int
    previous_version: int | None


class TemplateAuditList(BaseModel):
    items: list[TemplateAuditEntry]
