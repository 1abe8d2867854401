"""`GET /api/v1/notifications`: the caller's notification history, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from keelson_services.contracts.notifications import Notification, NotificationList
from keelson_services.deps import CurrentIdentity
from keelson_services.services.notifications.deps import Components

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", response_model=NotificationList, summary="My notification history")
async def history(
    caller: CurrentIdentity,
    parts: Components,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> NotificationList:
    rows = await parts.notifications.history(caller.user_id, limit=limit, offset=offset)
    return NotificationList(items=[Notification.model_validate(row) for row in rows])
