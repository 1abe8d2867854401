"""Typed dependencies of the gateway's routes: who the caller is (a verified token or nobody),
and whether their rate limit lets the request through.

Every request is charged to a budget before it is forwarded: the user's when the token is
valid, otherwise the client address's (`forwarded.py`: behind a trusted proxy only). A request
with a bad token is charged to its address too, so guessing tokens is rate-limited like
everything else. Logins are also limited per account (`login_lockout`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keelson_services.auth import InvalidTokenError
from keelson_services.errors import ApiError
from keelson_services.identity import Identity
from keelson_services.services.gateway.accounts import Session
from keelson_services.services.gateway.components import GatewayComponents
from keelson_services.services.gateway.ratelimit import Decision, Policy

bearer = HTTPBearer(auto_error=False, description="An access token from `POST /api/v1/auth/token`.")


def components(request: Request) -> GatewayComponents:
    found: GatewayComponents = request.app.state.gateway
    return found


Gateway = Annotated[GatewayComponents, Depends(components)]


def client_address(request: Request, gateway: GatewayComponents) -> str:
    """The client's address: the peer's, or behind a trusted proxy the one it vouches for."""
    peer = request.client.host if request.client else "unknown"
    return gateway.proxies.client(peer, request.headers.getlist("x-forwarded-for"))


def limited(decision: Decision, message: str = "Too many requests; slow down") -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        message,
        details={"retry_after_seconds": int(decision.retry_after_header)},
        headers={"Retry-After": decision.retry_after_header},
    )


async def _charge(gateway: GatewayComponents, key: str, policy: Policy | None = None) -> None:
    decision = await gateway.limiter.charge(policy or gateway.requests, key)
    if not decision.allowed:
        raise limited(decision)


async def login_attempt(gateway: GatewayComponents, email: str) -> str:
    """The account's key under the lockout, once it is checked not to be locked out. Keyed by the
    email as sent, whether or not an account has it: a lockout says nothing about existence."""
    account = "account:" + email.strip().casefold()
    decision = await gateway.limiter.peek(gateway.login_failures, account)
    if not decision.allowed:
        raise limited(decision, "Too many failed logins for this account; try again later")
    return account


async def login_failed(gateway: GatewayComponents, account: str) -> None:
    await gateway.limiter.charge(gateway.login_failures, account)


async def anonymous(request: Request, gateway: Gateway) -> None:
    """Public operations (register, log in): rate-limited by address; any token is ignored."""
    await _charge(gateway, "addr:" + client_address(request, gateway))


async def session(
    request: Request,
    gateway: Gateway,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Session:
    """The caller's verified token, held against their account's current state (`accounts.py`)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        await _charge(gateway, "addr:" + client_address(request, gateway))
        raise ApiError(
            401,
            "unauthorized",
            "This request needs an access token (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        claims = await gateway.verifier.verify(credentials.credentials)
    except InvalidTokenError:
        await _charge(gateway, "addr:" + client_address(request, gateway))
        raise
    await _charge(gateway, "user:" + claims.subject)
    return await gateway.accounts.session(claims)


async def authenticated(caller: Annotated[Session, Depends(session)]) -> Identity:
    return caller.identity


async def verified(caller: Annotated[Session, Depends(session)], gateway: Gateway) -> Identity:
    """A caller whose email is verified: what placing an order takes (docs/accounts.md)."""
    if not caller.email_verified:
        caller = await gateway.accounts.session(caller.claims, fresh=True)  # verified a moment ago?
    if not caller.email_verified:
        raise ApiError(
            403, "email_not_verified", "Verify your email first (POST /api/v1/auth/verify-email/resend sends the link)"
        )
    return caller.identity


async def admin(caller: Annotated[Identity, Depends(authenticated)]) -> Identity:
    if not caller.has_role("admin"):
        raise ApiError(403, "forbidden", "This request needs the admin role")
    return caller


Anonymous = Annotated[None, Depends(anonymous)]
Caller = Annotated[Identity, Depends(authenticated)]
VerifiedCaller = Annotated[Identity, Depends(verified)]
Admin = Annotated[Identity, Depends(admin)]
