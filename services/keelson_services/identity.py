"""Who a request acts for, as the gateway established it from a verified JWT.

The gateway is the only service that reads tokens; behind it, services trust `X-User-Id` and
`X-User-Roles`, which the gateway always overwrites (a client cannot smuggle them in) and which
the platform's NetworkPolicies let only declared callers send. The resilient client forwards the
current identity on every call, so a service calling another acts for the same user.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

USER_ID_HEADER = "x-user-id"
ROLES_HEADER = "x-user-roles"
HEADERS = (USER_ID_HEADER, ROLES_HEADER)


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    roles: frozenset[str] = frozenset()

    @classmethod
    def of(cls, user_id: str, roles: Iterable[str]) -> Identity:
        return cls(user_id, frozenset(roles))

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Identity | None:
        """The identity in request headers (lowercase names), or None when there is none."""
        user_id = headers.get(USER_ID_HEADER, "").strip()
        if not user_id:
            return None
        roles = (r.strip() for r in headers.get(ROLES_HEADER, "").split(","))
        return cls(user_id, frozenset(r for r in roles if r))

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def headers(self) -> dict[str, str]:
        return {USER_ID_HEADER: self.user_id, ROLES_HEADER: ",".join(sorted(self.roles))}


_current: ContextVar[Identity | None] = ContextVar("keelson_identity", default=None)


def current() -> Identity | None:
    return _current.get()


@contextmanager
def activated(identity: Identity | None) -> Iterator[Identity | None]:
    token = _current.set(identity)
    try:
        yield identity
    finally:
        _current.reset(token)
