"""Bodies of the notifications part of the public API (`/notifications`): the caller's history.
The notifications service implements these and may extend them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel


class Notification(BaseModel):
    id: UUID
    channel: str
    template: str
    status: str
    created_at: datetime


class NotificationList(BaseModel):
    items: list[Notification]
