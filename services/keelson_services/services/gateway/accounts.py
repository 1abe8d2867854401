"""Every access token is held against its account's current state (docs/accounts.md).

An access token is good for 15 minutes; deactivating, demoting, resetting a password or deleting
an account must not wait for that. So the gateway looks the account up in the users service
(`GET /internal/v1/accounts/{id}`: active, roles, verified, token version) and keeps the answer
for `ttl_seconds` (`KEELSON_GATEWAY_ACCOUNT_CHECK_SECONDS`, 5): a change reaches every replica
within that bound, at one lookup per active user and interval per replica. A token is then

- refused (401 `invalid_token`) when its `ver` is older than the account's token version (the
  sessions were ended) or the account no longer exists, and 403 `account_deactivated` when the
  account is deactivated or erased;
- granted only the roles both it and the account hold: a demoted admin is a customer at once,
  and a promotion needs a new token;
- verified or not as the account is now, not as when the token was issued (a request refused
  for want of verification looks again first, so a just-verified account is not kept waiting).

When the users service does not answer, the last state seen is used however old, and without one
the token's own claims: requests go on while users is down, and the bound falls back to the
token's lifetime. A lookup is never retried in the request and waits at most `lookup_seconds`
(`KEELSON_GATEWAY_ACCOUNT_CHECK_TIMEOUT_SECONDS`, 1): users being slow must not make every request
slow, nor eat the request's 5 s budget (found by e2e/test_gateway_budget.py: a users service that
never answered held each request for the whole budget before its own call even started). Its
failures count against users' circuit breaker like any call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from keelson_services.auth import InvalidTokenError
from keelson_services.auth.verifier import AccessClaims
from keelson_services.errors import ApiError
from keelson_services.http.breaker import MonotonicClock
from keelson_services.identity import Identity

log = logging.getLogger("keelson.gateway.accounts")


@dataclass(frozen=True)
class AccountState:
    active: bool
    roles: frozenset[str]
    email_verified: bool
    token_version: int


class AccountLookupError(RuntimeError):
    """The users service gave no usable answer (down, slow, or an answer of another shape)."""


# What a lookup yields: the state, or None when the users service says there is no such account.
Fetch = Callable[[UUID], Awaitable[AccountState | None]]


@dataclass(frozen=True)
class Session:
    """A verified token as it stands against its account: who, which roles, verified or not."""

    identity: Identity
    email_verified: bool
    claims: AccessClaims


class AccountStates:
    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_seconds: float,
        lookup_seconds: float = 1.0,
        max_entries: int = 100_000,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        """`ttl_seconds` 0: no lookups, tokens are taken at their word until they expire."""
        self._fetch = fetch
        self.ttl_seconds = ttl_seconds
        self.lookup_seconds = lookup_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[UUID, tuple[float, AccountState | None]] = OrderedDict()

    async def session(self, claims: AccessClaims, *, fresh: bool = False) -> Session:
        """`fresh`: look the account up even if its state is cached (before refusing on its basis)."""
        if self.ttl_seconds <= 0:
            return from_claims(claims)
        try:
            user_id = UUID(claims.subject)
        except ValueError:
            raise InvalidTokenError("bad subject") from None
        found, state = await self._state(user_id, fresh=fresh)
        if not found:
            return from_claims(claims)
        return held_against(claims, state)

    async def _state(self, user_id: UUID, *, fresh: bool) -> tuple[bool, AccountState | None]:
        """(True, the state or None for no account), or (False, None) when nothing is known."""
        now = self._clock()
        cached = self._cache.get(user_id)
        if cached is not None and not fresh and now - cached[0] < self.ttl_seconds:
            self._cache.move_to_end(user_id)
            return True, cached[1]
        try:
            async with asyncio.timeout(self.lookup_seconds):
                state = await self._fetch(user_id)
        except (AccountLookupError, ApiError, TimeoutError) as exc:
            reason = exc if not isinstance(exc, TimeoutError) else f"no answer within {self.lookup_seconds:g}s"
            log.warning("account state of %s unavailable (%s); using what is known", user_id, reason)
            return (True, cached[1]) if cached is not None else (False, None)
        self._cache[user_id] = (now, state)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return True, state


def from_claims(claims: AccessClaims) -> Session:
    verified = claims.raw.get("email_verified", True)  # tokens from before the claim: grandfathered
    return Session(claims.identity(), verified is True, claims)


def held_against(claims: AccessClaims, state: AccountState | None) -> Session:
    """The session a verified token gives, given its account's state (None: no such account)."""
    if state is None:
        raise InvalidTokenError("the account no longer exists")
    version = claims.raw.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < state.token_version:
        raise InvalidTokenError("revoked")
    if not state.active:
        raise ApiError(403, "account_deactivated", "This account is deactivated")
    return Session(Identity(claims.subject, claims.roles & state.roles), state.email_verified, claims)
