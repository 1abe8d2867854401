"""Administration, admin role only: `GET /api/v1/admin/users`, `PATCH /api/v1/admin/users/{id}`
(roles, activation), `DELETE /api/v1/admin/users/{id}` (erasure) and `POST /api/v1/admin/keys/rotate`."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from keelson_services.contracts.users import AdminUserUpdate, SigningKeyInfo, UserList, UserProfile
from keelson_services.errors import ApiError
from keelson_services.services.users.deps import Components, CurrentAdmin

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
log = logging.getLogger("keelson.users.admin")


@router.get("/users", response_model=UserList, summary="List accounts (admin)")
async def list_users(
    admin: CurrentAdmin,
    parts: Components,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    users, total = await parts.users.page(limit=limit, offset=offset)
    return {"items": [u.profile() for u in users], "limit": limit, "offset": offset, "total": total}


@router.patch("/users/{user_id}", response_model=UserProfile, summary="Change an account's roles or activation (admin)")
async def update_user(user_id: UUID, body: AdminUserUpdate, admin: CurrentAdmin, parts: Components) -> dict[str, Any]:
    if user_id == admin.id and (body.active is False or (body.roles is not None and "admin" not in body.roles)):
        raise ApiError(409, "conflict", "An admin cannot deactivate or demote their own account")
    updated = await parts.users.update(
        user_id, roles=sorted(set(body.roles)) if body.roles else None, active=body.active
    )
    if updated is None:
        raise ApiError(404, "not_found", "No such account")
    log.info("account changed", extra={"admin_id": str(admin.id), "user_id": str(user_id)})
    return updated.profile()


@router.delete("/users/{user_id}", status_code=204, summary="Delete an account and erase its personal data (admin)")
async def delete_user(user_id: UUID, admin: CurrentAdmin, parts: Components) -> Response:
    if user_id == admin.id:
        # As with deactivation: the last admin must not lock everyone out by accident.
        raise ApiError(409, "conflict", "An admin deletes their own account through DELETE /api/v1/users/me")
    if not await parts.accounts.erase(user_id):
        raise ApiError(404, "not_found", "No such account")
    log.info("account deleted", extra={"admin_id": str(admin.id), "user_id": str(user_id)})
    return Response(status_code=204)


@router.post("/keys/rotate", response_model=SigningKeyInfo, summary="Rotate the token signing key (admin)")
async def rotate_signing_key(admin: CurrentAdmin, parts: Components) -> SigningKeyInfo:
    key = await parts.keys.rotate()
    log.info("signing key rotated", extra={"admin_id": str(admin.id), "kid": key.kid})
    return SigningKeyInfo(kid=key.kid, created_at=key.created_at)
