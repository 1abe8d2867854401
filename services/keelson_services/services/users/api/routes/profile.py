"""The caller's own account: `GET`, `PATCH` and `DELETE /api/v1/users/me` (delete erases it:
docs/accounts.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from keelson_services.contracts.users import ProfileUpdate, UserProfile
from keelson_services.errors import ApiError
from keelson_services.services.users.deps import Components, CurrentUser

router = APIRouter(prefix="/api/v1/users/me", tags=["users"])


@router.get("", response_model=UserProfile, summary="The caller's profile")
async def read_profile(user: CurrentUser) -> dict[str, Any]:
    return user.profile()


@router.patch("", response_model=UserProfile, summary="Change the caller's name or password")
async def update_profile(body: ProfileUpdate, user: CurrentUser, parts: Components) -> dict[str, Any]:
    password_hash = None
    if body.password is not None:
        assert body.current_password is not None  # the contract requires it with a new password
        if not await parts.passwords.verify(user.password_hash, body.current_password):
            raise ApiError(403, "wrong_password", "current_password is wrong")
        password_hash = await parts.passwords.hash(body.password)
    updated = await parts.users.update(user.id, name=body.name, password_hash=password_hash)
    if updated is None:
        raise ApiError(404, "not_found", "The account no longer exists")
    if password_hash is not None:
        await parts.refresh_tokens.revoke_all(user.id)  # other sessions must log in with the new one
    return updated.profile()


@router.delete("", status_code=204, summary="Delete the caller's account and erase its personal data")
async def delete_account(user: CurrentUser, parts: Components) -> Response:
    await parts.accounts.erase(user.id)
    return Response(status_code=204)
