"""`GET /internal/v1/accounts/{id}`: an account's state as the gateway checks every access token
against it (active, roles, verified, token version). Outside `/api/v1`, so the gateway never
forwards a public request here; only the platform's declared callers (the gateway) reach it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from keelson_services.contracts.users import AccountState
from keelson_services.errors import ApiError
from keelson_services.services.users.deps import Components

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.get("/accounts/{user_id}", response_model=AccountState, summary="An account's state (gateway only)")
async def account_state(user_id: UUID, parts: Components) -> dict[str, Any]:
    user = await parts.users.by_id(user_id)
    if user is None:
        raise ApiError(404, "not_found", "No such account")
    return user.state()
