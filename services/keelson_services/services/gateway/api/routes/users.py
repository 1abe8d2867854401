"""The users service's part of the public API: everything under `/users`, `/auth` and `/admin`
belongs to the service the platform exposes at `/users`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keelson_services.contracts.users import (
    AdminUserUpdate,
    LogoutRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    SigningKeyInfo,
    TokenRequest,
    TokenResponse,
    UserList,
    UserProfile,
    VerifyEmailRequest,
)
from keelson_services.services.gateway.api.routes.documented import answers
from keelson_services.services.gateway.deps import Admin, Anonymous, Caller, Gateway, login_attempt, login_failed
from keelson_services.services.gateway.proxy import forward

AREA = "/users"
router = APIRouter(prefix="/api/v1")


async def _to_users(gateway: Gateway, request: Request, caller: Caller | None = None) -> Response:
    return await forward(gateway.client, request, service=gateway.routes.for_area(AREA).service, caller=caller)


@router.post(
    "/users", tags=["users"], summary="Register", status_code=201, response_model=None,
    responses=answers(201, UserProfile, "The new account"),
)  # fmt: skip
async def register(body: RegisterRequest, request: Request, gateway: Gateway, _: Anonymous) -> Response:
    return await _to_users(gateway, request)


@router.post("/auth/token", tags=["auth"], summary="Log in", response_model=None, responses=answers(200, TokenResponse))
async def login(body: TokenRequest, request: Request, gateway: Gateway, _: Anonymous) -> Response:
    """Limited per address like every anonymous request, and per account: after
    `KEELSON_GATEWAY_LOGIN_FAILURES` wrong passwords the account is locked out (429) until its
    budget refills, one attempt per `KEELSON_GATEWAY_LOGIN_LOCKOUT_SECONDS`."""
    account = await login_attempt(gateway, body.email)
    response = await _to_users(gateway, request)
    if response.status_code == 401:
        await login_failed(gateway, account)
    return response


@router.post(
    "/auth/refresh", tags=["auth"], summary="Refresh tokens", response_model=None,
    responses=answers(200, TokenResponse),
)  # fmt: skip
async def refresh(body: RefreshRequest, request: Request, gateway: Gateway, _: Anonymous) -> Response:
    return await _to_users(gateway, request)


@router.post(
    "/auth/logout", tags=["auth"], summary="Log out", status_code=204, response_model=None,
    responses=answers(204, None, "The refresh token and its session are revoked (also when they already were)"),
)  # fmt: skip
async def logout(body: LogoutRequest, request: Request, gateway: Gateway, _: Anonymous) -> Response:
    """Anonymous: the refresh token is the credential, and logging out must work with an expired
    access token. The access tokens already issued run out within their lifetime (15 min)."""
    return await _to_users(gateway, request)


@router.post(
    "/auth/verify-email", tags=["auth"], summary="Verify my email", status_code=204, response_model=None,
    responses=answers(204, None, "Verified"),
)  # fmt: skip
async def verify_email(body: VerifyEmailRequest, request: Request, gateway: Gateway, _: Anonymous) -> Response:
    """With the token from the emailed link: one use, valid 24 h; 401 `invalid_link` otherwise."""
    return await _to_users(gateway, request)


@router.post(
    "/auth/verify-email/resend", tags=["auth"], summary="Send me a new verification link", status_code=202,
    response_model=None, response_class=Response,  # no body: nothing documented as JSON
    responses=answers(202, None, "A new link is on its way (at most one a minute)"),
)  # fmt: skip
async def resend_verification(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_users(gateway, request, caller)


@router.post(
    "/auth/password-reset", tags=["auth"], summary="Ask for a password-reset link", status_code=202,
    response_model=None, response_class=Response,  # no body: nothing documented as JSON
    responses=answers(202, None, "If the email has an account, a link is on its way"),
)  # fmt: skip
async def request_password_reset(
    body: PasswordResetRequest, request: Request, gateway: Gateway, _: Anonymous
) -> Response:
    """Always 202: the answer tells nothing about whether the email has an account."""
    return await _to_users(gateway, request)


@router.post(
    "/auth/password-reset/confirm", tags=["auth"], summary="Set a new password with the emailed link",
    status_code=204, response_model=None, responses=answers(204, None, "Set; every session of the account ended"),
)  # fmt: skip
async def confirm_password_reset(
    body: PasswordResetConfirm, request: Request, gateway: Gateway, _: Anonymous
) -> Response:
    """One use, valid 30 min; 401 `invalid_link` otherwise."""
    return await _to_users(gateway, request)


@router.get("/users/me", tags=["users"], summary="My profile", response_model=None, responses=answers(200, UserProfile))
async def read_profile(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_users(gateway, request, caller)


@router.patch(
    "/users/me", tags=["users"], summary="Change my name or password", response_model=None,
    responses=answers(200, UserProfile),
)  # fmt: skip
async def update_profile(body: ProfileUpdate, request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_users(gateway, request, caller)


@router.delete(
    "/users/me", tags=["users"], summary="Delete my account", status_code=204, response_model=None,
    responses=answers(204, None, "Deleted: personal data erased here, in orders and in notifications"),
)  # fmt: skip
async def delete_account(request: Request, gateway: Gateway, caller: Caller) -> Response:
    return await _to_users(gateway, request, caller)


@router.get(
    "/admin/users", tags=["admin"], summary="List accounts (admin)", response_model=None,
    responses=answers(200, UserList),
)  # fmt: skip
async def list_users(
    request: Request,
    gateway: Gateway,
    caller: Admin,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return await _to_users(gateway, request, caller)


@router.patch(
    "/admin/users/{user_id}", tags=["admin"], summary="Change an account's roles or activation (admin)",
    response_model=None, responses=answers(200, UserProfile),
)  # fmt: skip
async def update_user(
    user_id: UUID, body: AdminUserUpdate, request: Request, gateway: Gateway, caller: Admin
) -> Response:
    return await _to_users(gateway, request, caller)


@router.delete(
    "/admin/users/{user_id}", tags=["admin"], summary="Delete an account (admin)", status_code=204,
    response_model=None, responses=answers(204, None, "Deleted: personal data erased"),
)  # fmt: skip
async def delete_user(user_id: UUID, request: Request, gateway: Gateway, caller: Admin) -> Response:
    return await _to_users(gateway, request, caller)


@router.post(
    "/admin/keys/rotate", tags=["admin"], summary="Rotate the token signing key (admin)", response_model=None,
    responses=answers(200, SigningKeyInfo),
)  # fmt: skip
async def rotate_signing_key(request: Request, gateway: Gateway, caller: Admin) -> Response:
    return await _to_users(gateway, request, caller)
