"""The gateway's own settings, each optional with the default shown:

| variable                                         | default | |
| ---                                              | ---     | --- |
| `KEELSON_JWT_ISSUER` / `KEELSON_JWT_AUDIENCE`    | from the platform name | must match the users service's |
| `KEELSON_GATEWAY_AUTH_SERVICE`                   | users   | the service publishing the JWKS (one of `calls`) |
| `KEELSON_GATEWAY_JWKS_TTL_SECONDS`               | 300     | how long fetched keys are reused |
| `KEELSON_GATEWAY_JWKS_REFRESH_COOLDOWN_SECONDS`  | 1       | least time between refreshes for unknown key ids |
| `KEELSON_GATEWAY_ACCOUNT_CHECK_SECONDS`          | 5       | account state kept (`accounts.py`); 0: none |
| `KEELSON_GATEWAY_ACCOUNT_CHECK_TIMEOUT_SECONDS`  | 1       | longest wait for an account lookup, then what is known |
| `KEELSON_GATEWAY_RATE_LIMIT_PER_SECOND`          | 20      | tokens a client's bucket gains per second |
| `KEELSON_GATEWAY_RATE_LIMIT_BURST`               | 40      | the bucket's size |
| `KEELSON_GATEWAY_RATE_LIMIT_CLIENTS`             | 100000  | in-memory buckets kept (least recently used go first) |
| `KEELSON_GATEWAY_LOGIN_FAILURES`                 | 5       | failed logins of one account before it is locked out |
| `KEELSON_GATEWAY_LOGIN_LOCKOUT_SECONDS`          | 300     | then one more attempt per this time |
| `KEELSON_GATEWAY_TRUSTED_PROXIES`                | none    | proxies (CIDRs) whose X-Forwarded-For is read |
| `KEELSON_GATEWAY_MAX_BODY_BYTES`                 | 65536   | the public API's bodies are small |

With a database (`KEELSON_DATABASE_URI`, the gateway's `database:` in the platform) the limits
hold for the platform as a whole (`shared_limits.py`); without one each replica counts on its
own, and with N replicas a client can get up to N times the rate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from keelson_services import envconfig
from keelson_services.auth import config as auth_config
from keelson_services.services.gateway.forwarded import Network, parse_networks
from keelson_services.settings import Settings


@dataclass(frozen=True)
class GatewayConfig:
    issuer: str
    audience: str
    auth_service: str = "users"
    jwks_ttl_seconds: float = 300.0
    jwks_refresh_cooldown_seconds: float = 1.0
    account_check_seconds: float = 5.0
    account_check_timeout_seconds: float = 1.0
    rate_per_second: float = 20.0
    rate_burst: float = 40.0
    rate_limit_clients: int = 100_000
    login_failures: int = 5
    login_lockout_seconds: float = 300.0
    trusted_proxies: tuple[Network, ...] = ()
    max_body_bytes: int = 65536

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        return cls(
            issuer=auth_config.issuer(env, settings.platform),
            audience=auth_config.audience(env, settings.platform),
            auth_service=envconfig.text(env, "KEELSON_GATEWAY_AUTH_SERVICE", "users"),
            jwks_ttl_seconds=envconfig.number(env, "KEELSON_GATEWAY_JWKS_TTL_SECONDS", 300.0, minimum=1),
            jwks_refresh_cooldown_seconds=envconfig.number(env, "KEELSON_GATEWAY_JWKS_REFRESH_COOLDOWN_SECONDS", 1.0),
            account_check_seconds=envconfig.number(env, "KEELSON_GATEWAY_ACCOUNT_CHECK_SECONDS", 5.0),
            account_check_timeout_seconds=envconfig.number(env, "KEELSON_GATEWAY_ACCOUNT_CHECK_TIMEOUT_SECONDS", 1.0),
            rate_per_second=envconfig.number(env, "KEELSON_GATEWAY_RATE_LIMIT_PER_SECOND", 20.0, minimum=0.001),
            rate_burst=envconfig.number(env, "KEELSON_GATEWAY_RATE_LIMIT_BURST", 40.0, minimum=1),
            rate_limit_clients=envconfig.whole(env, "KEELSON_GATEWAY_RATE_LIMIT_CLIENTS", 100_000, minimum=1),
            login_failures=envconfig.whole(env, "KEELSON_GATEWAY_LOGIN_FAILURES", 5, minimum=1),
            login_lockout_seconds=envconfig.number(env, "KEELSON_GATEWAY_LOGIN_LOCKOUT_SECONDS", 300.0, minimum=1),
            trusted_proxies=parse_networks(env.get("KEELSON_GATEWAY_TRUSTED_PROXIES", "")),
            max_body_bytes=envconfig.whole(env, "KEELSON_GATEWAY_MAX_BODY_BYTES", 65536, minimum=1024),
        )
