"""FastAPI dependencies every service shares: who the request acts for, and role checks.

Behind the gateway, identity comes from the `X-User-Id`/`X-User-Roles` headers the gateway set
after verifying the caller's token (see `identity.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends

from keelson_services import identity
from keelson_services.errors import ApiError
from keelson_services.identity import Identity


def current_identity() -> Identity:
    caller = identity.current()
    if caller is None:
        raise ApiError(401, "unauthorized", "This request needs an authenticated user")
    return caller


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require_role(role: str) -> Callable[[Identity], Identity]:
    """A dependency that lets through only callers holding `role` (403 otherwise)."""

    def check(caller: CurrentIdentity) -> Identity:
        if not caller.has_role(role):
            raise ApiError(403, "forbidden", f"This request needs the {role} role")
        return caller

    return check
