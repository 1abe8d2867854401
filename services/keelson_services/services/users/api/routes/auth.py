"""Tokens and the links sent by email: `POST /api/v1/auth/token` (log in), `/auth/refresh`,
`/auth/logout`, `/auth/verify-email` (and `/resend`), `/auth/password-reset` (and `/confirm`)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from keelson_services.contracts.users import (
    LogoutRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenRequest,
    TokenResponse,
    VerifyEmailRequest,
)
from keelson_services.errors import ApiError
from keelson_services.services.users.deps import Components, CurrentUser
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


@router.post("/logout", status_code=204, summary="Log out: revoke a refresh token and its session")
async def logout(body: LogoutRequest, parts: Components) -> Response:
    await parts.refresh_tokens.revoke_family(body.refresh_token)
    return Response(status_code=204)


@router.post("/verify-email", status_code=204, summary="Verify the account's email with the emailed token")
async def verify_email(body: VerifyEmailRequest, parts: Components) -> Response:
    await parts.accounts.verify_email(body.token)
    return Response(status_code=204)


@router.post("/verify-email/resend", status_code=202, response_class=Response, summary="Email a new verification link")
async def resend_verification(user: CurrentUser, parts: Components) -> Response:
    await parts.accounts.resend_verification(user)
    return Response(status_code=202)


@router.post("/password-reset", status_code=202, response_class=Response, summary="Email a password-reset link")
async def request_password_reset(body: PasswordResetRequest, parts: Components) -> Response:
    """202 whether or not the email has an account: the answer must not tell."""
    await parts.accounts.request_password_reset(body.email)
    return Response(status_code=202)


@router.post("/password-reset/confirm", status_code=204, summary="Set a new password with the emailed token")
async def confirm_password_reset(body: PasswordResetConfirm, parts: Components) -> Response:
    password_hash = await parts.passwords.hash(body.new_password)
    await parts.accounts.reset_password(body.token, password_hash)
    return Response(status_code=204)
