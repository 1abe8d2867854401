"""Bodies of the notifications part of the public API (`/notifications`): the caller's history.
The notifications service implements these and may extend them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field


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
