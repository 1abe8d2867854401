"""Tokens: `POST /api/v1/auth/token` (log in) and `POST /api/v1/auth/refresh`."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from keelson_services.contracts.users import RefreshRequest, TokenRequest, TokenResponse
from keelson_services.errors import ApiError
from keelson_services.services.users.deps import Components
from keelson_services.services.users.repository import User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger("keelson.users.auth")


async def _tokens(parts: Components, user: User, refresh_token: str | None = None) -> TokenResponse:
    return TokenResponse(
        access_token=await parts.access_tokens.issue(user),
        refresh_token=refresh_token or await parts.refresh_tokens.issue(user.id),
        expires_in=parts.access_tokens.expires_in,
    )


@router.post("/token", response_model=TokenResponse, summary="Log in with email and password")
async def login(body: TokenRequest, parts: Components) -> TokenResponse:
    user = await parts.users.by_email(body.email)
    if not await parts.passwords.verify(user.password_hash if user else None, body.password) or user is None:
        # One answer for an unknown email and a wrong password: no account enumeration.
        raise ApiError(401, "invalid_credentials", "The email or password is wrong")
    if not user.active:
        raise ApiError(403, "account_deactivated", "This account is deactivated")
    if parts.passwords.needs_rehash(user.password_hash):
        await parts.users.update(user.id, password_hash=await parts.passwords.hash(body.password))
    log.info("login", extra={"user_id": str(user.id)})
    return await _tokens(parts, user)


@router.post("/refresh", response_model=TokenResponse, summary="Exchange a refresh token for new tokens")
async def refresh(body: RefreshRequest, parts: Components) -> TokenResponse:
    user_id, successor = await parts.refresh_tokens.exchange(body.refresh_token)
    user = await parts.users.by_id(user_id)
    if user is None or not user.active:
        raise ApiError(401, "invalid_refresh_token", "The refresh token is not valid; log in again")
    return await _tokens(parts, user, successor)
