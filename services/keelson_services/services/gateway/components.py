"""Everything the gateway's routes work with, built once per app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from pydantic import ValidationError

from keelson_services.auth import JWKS_PATH, JwksCache, TokenVerifier
from keelson_services.contracts.users import AccountState as AccountStateBody
from keelson_services.db import Database
from keelson_services.http import DownstreamUnreachableError, ServiceClient
from keelson_services.http.breaker import MonotonicClock
from keelson_services.services.gateway.accounts import AccountLookupError, AccountState, AccountStates
from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.forwarded import TrustedProxies
from keelson_services.services.gateway.ratelimit import Limiter, MemoryLimiter, Policy
from keelson_services.services.gateway.routing import RouteTable
from keelson_services.services.gateway.shared_limits import SharedLimiter
from keelson_services.settings import Settings


@dataclass(frozen=True)
class GatewayComponents:
    config: GatewayConfig
    client: ServiceClient
    routes: RouteTable
    verifier: TokenVerifier
    accounts: AccountStates
    limiter: Limiter
    requests: Policy  # every request, per user (per address when anonymous)
    login_failures: Policy  # failed logins per account: the lockout
    proxies: TrustedProxies
    db: Database | None  # the shared rate-limit store, when the platform gives the gateway a database

    @classmethod
    def build(
        cls,
        settings: Settings,
        config: GatewayConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: MonotonicClock | None = None,
    ) -> GatewayComponents:
        """`transport` and `clock` are for tests: in-process services and a controllable time (of
        the in-memory limits; the shared ones use the database's clock)."""
        timing: dict[str, Any] = {"clock": clock} if clock is not None else {}
        client = ServiceClient.from_settings(settings, transport=transport, **timing)

        async def fetch_jwks() -> Mapping[str, Any]:
            response = await client.get(config.auth_service, JWKS_PATH)
            if response.status_code != 200:
                raise DownstreamUnreachableError(config.auth_service, f"JWKS answered {response.status_code}")
            document: Mapping[str, Any] = response.json()
            return document

        async def fetch_account(user_id: UUID) -> AccountState | None:
            response = await client.get(config.auth_service, f"/internal/v1/accounts/{user_id}", retry=False)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise AccountLookupError(f"the account lookup answered {response.status_code}")
            try:
                body = AccountStateBody.model_validate(response.json())
            except (ValueError, ValidationError) as exc:
                raise AccountLookupError("the account lookup answered something else") from exc
            return AccountState(body.active, frozenset(body.roles), body.email_verified, body.token_version)

        memory = MemoryLimiter(max_clients=config.rate_limit_clients, **timing)
        db = Database(settings.database_uri, application_name="gateway") if settings.database_uri else None
        limiter: Limiter = memory if db is None else SharedLimiter(db, fallback=memory)
        keys = JwksCache(
            fetch_jwks,
            ttl_seconds=config.jwks_ttl_seconds,
            refresh_cooldown_seconds=config.jwks_refresh_cooldown_seconds,
            **timing,
        )
        return cls(
            config=config,
            client=client,
            routes=RouteTable(settings.routes),
            verifier=TokenVerifier(keys, issuer=config.issuer, audience=config.audience),
            accounts=AccountStates(
                fetch_account,
                ttl_seconds=config.account_check_seconds,
                lookup_seconds=config.account_check_timeout_seconds,
                **timing,
            ),
            limiter=limiter,
            requests=Policy("requests", rate=config.rate_per_second, burst=config.rate_burst),
            login_failures=Policy(
                "login-failures", rate=1 / config.login_lockout_seconds, burst=float(config.login_failures)
            ),
            proxies=TrustedProxies(config.trusted_proxies),
            db=db,
        )
