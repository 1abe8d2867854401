"""Registration: `POST /api/v1/users`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from keelson_services.contracts.users import RegisterRequest, UserProfile
from keelson_services.services.users.deps import Components

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post("/users", status_code=201, response_model=UserProfile, summary="Register a customer account")
async def register(body: RegisterRequest, parts: Components) -> dict[str, Any]:
    password_hash = await parts.passwords.hash(body.password)
    user = await parts.accounts.register(email=body.email, name=body.name, password_hash=password_hash)
    return user.profile()
