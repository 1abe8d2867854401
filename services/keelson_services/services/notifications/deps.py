"""Typed dependencies of the notifications service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from keelson_services.services.notifications.components import NotificationsComponents


def components(request: Request) -> NotificationsComponents:
    found: NotificationsComponents = request.app.state.notifications
    return found


Components = Annotated[NotificationsComponents, Depends(components)]
