"""Typed dependencies of the users service's routes."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from keelson_services.deps import CurrentIdentity
from keelson_services.errors import ApiError
from keelson_services.services.users.components import UsersComponents
from keelson_services.services.users.repository import User


def components(request: Request) -> UsersComponents:
    found: UsersComponents = request.app.state.users
    return found


Components = Annotated[UsersComponents, Depends(components)]


async def current_user(caller: CurrentIdentity, parts: Components) -> User:
    """The caller's account, read fresh: a deactivated account is refused even while its access
    token is still valid, and roles are the database's, not the token's."""
    try:
        user_id = UUID(caller.user_id)
    except ValueError:
        raise ApiError(401, "unauthorized", "The caller's identity is not a user id") from None
    user = await parts.users.by_id(user_id)
    if user is None or user.erased:
        raise ApiError(401, "unauthorized", "The caller's account no longer exists")
    if not user.active:
        raise ApiError(403, "account_deactivated", "This account is deactivated")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_admin(user: CurrentUser) -> User:
    if "admin" not in user.roles:
        raise ApiError(403, "forbidden", "This request needs the admin role")
    return user


CurrentAdmin = Annotated[User, Depends(current_admin)]
