"""Typed dependencies of the gateway's routes: who the caller is (a verified token or nobody),
and whether their rate limit lets the request through.

Every request is charged to a bucket before it is forwarded: the user's when the token is
valid, otherwise the client address's. A request with a bad token is charged to its address
too, so guessing tokens is rate-limited like everything else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keelson_services.auth import InvalidTokenError
from keelson_services.errors import ApiError
from keelson_services.identity import Identity
from keelson_services.services.gateway.components import GatewayComponents

bearer = HTTPBearer(auto_error=False, description="An access token from `POST /api/v1/auth/token`.")


def components(request: Request) -> GatewayComponents:
    found: GatewayComponents = request.app.state.gateway
    return found


Gateway = Annotated[GatewayComponents, Depends(components)]


def client_address(request: Request, trusted_hops: int) -> str:
    """The client's address: the peer's, or behind `trusted_hops` proxies the entry they added
    to X-Forwarded-For (entries further left are the client's own claims and not trusted)."""
    peer = request.client.host if request.client else "unknown"
    if trusted_hops <= 0:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else peer


def _charge(gateway: GatewayComponents, key: str) -> None:
    decision = gateway.limiter.take(key)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests; slow down",
            details={"retry_after_seconds": int(decision.retry_after_header)},
            headers={"Retry-After": decision.retry_after_header},
        )


async def anonymous(request: Request, gateway: Gateway) -> None:
    """Public operations (register, log in): rate-limited by address; any token is ignored."""
    _charge(gateway, "addr:" + client_address(request, gateway.config.trusted_proxy_hops))


async def authenticated(
    request: Request,
    gateway: Gateway,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    if credentials is None or credentials.scheme.lower() != "bearer":
        _charge(gateway, "addr:" + client_address(request, gateway.config.trusted_proxy_hops))
        raise ApiError(
            401,
            "unauthorized",
            "This request needs an access token (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        claims = await gateway.verifier.verify(credentials.credentials)
    except InvalidTokenError:
        _charge(gateway, "addr:" + client_address(request, gateway.config.trusted_proxy_hops))
        raise
    _charge(gateway, "user:" + claims.subject)
    return claims.identity()


async def admin(caller: Annotated[Identity, Depends(authenticated)]) -> Identity:
    if not caller.has_role("admin"):
        raise ApiError(403, "forbidden", "This request needs the admin role")
    return caller


Anonymous = Annotated[None, Depends(anonymous)]
Caller = Annotated[Identity, Depends(authenticated)]
Admin = Annotated[Identity, Depends(admin)]
