"""The users service's own settings, each optional with the default shown:

| variable                                   | default        |                                   |
| ---                                        | ---            | ---                               |
| `KEELSON_JWT_ISSUER` / `KEELSON_JWT_AUDIENCE` | from the platform name | see `keelson_services.auth.config` |
| `KEELSON_USERS_ACCESS_TOKEN_TTL_SECONDS`   | 900 (15 min)   | short: roles and deactivation take effect within it |
| `KEELSON_USERS_REFRESH_TOKEN_TTL_SECONDS`  | 2592000 (30 d) |                                   |
| `KEELSON_USERS_KEY_ROTATION_SECONDS`       | 2592000 (30 d) | age at which a new signing key takes over |
| `KEELSON_USERS_VERIFICATION_TTL_SECONDS`   | 86400 (24 h)   | how long an email-verification link works |
| `KEELSON_USERS_PASSWORD_RESET_TTL_SECONDS` | 1800 (30 min)  | how long a password-reset link works |
| `KEELSON_USERS_LINK_RESEND_SECONDS`        | 60             | a second link of a kind is emailed no sooner |
| `KEELSON_USERS_LINKS_URL`                  | see below      | the front end the emailed links open |
| `KEELSON_USERS_ARGON2_TIME_COST`           | 2              | OWASP's Argon2id minimum: t=2,    |
| `KEELSON_USERS_ARGON2_MEMORY_KIB`          | 19456          | m=19 MiB, p=1, which keeps a few  |
| `KEELSON_USERS_ARGON2_PARALLELISM`         | 1              | concurrent hashes inside a 256 MiB container |
| `KEELSON_USERS_HASH_CONCURRENCY`           | 4              | hashes computed at once (memory bound) |
| `KEELSON_KEY_ENCRYPTION_KEY`               | required       | seals the signing keys at rest (`auth/sealing.py`) |
| `KEELSON_PREVIOUS_KEY_ENCRYPTION_KEY`      | none           | the KEK before a change (re-sealed at start) |

The links are `<KEELSON_USERS_LINKS_URL>/verify-email?token=...` and `/reset-password?token=...`;
the default, `https://<platform>.invalid/account`, is plainly a placeholder to replace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from keelson_services import envconfig
from keelson_services.auth import config as auth_config
from keelson_services.auth.sealing import Sealer
from keelson_services.settings import Settings


@dataclass(frozen=True)
class UsersConfig:
    issuer: str
    audience: str
    sealer: Sealer
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=30)
    key_rotation_period: timedelta = timedelta(days=30)
    verification_ttl: timedelta = timedelta(hours=24)
    password_reset_ttl: timedelta = timedelta(minutes=30)
    link_resend_interval: timedelta = timedelta(seconds=60)
    links_url: str = "https://keelson.invalid/account"
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    hash_concurrency: int = 4

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> UsersConfig:
        env = os.environ if env is None else env
        seconds = envconfig.number
        return cls(
            issuer=auth_config.issuer(env, settings.platform),
            audience=auth_config.audience(env, settings.platform),
            sealer=Sealer.from_env(env),
            access_token_ttl=timedelta(seconds=seconds(env, "KEELSON_USERS_ACCESS_TOKEN_TTL_SECONDS", 900, minimum=1)),
            refresh_token_ttl=timedelta(
                seconds=seconds(env, "KEELSON_USERS_REFRESH_TOKEN_TTL_SECONDS", 30 * 86400, minimum=1)
            ),
            key_rotation_period=timedelta(
                seconds=seconds(env, "KEELSON_USERS_KEY_ROTATION_SECONDS", 30 * 86400, minimum=60)
            ),
            verification_ttl=timedelta(
                seconds=seconds(env, "KEELSON_USERS_VERIFICATION_TTL_SECONDS", 86400, minimum=1)
            ),
            password_reset_ttl=timedelta(
                seconds=seconds(env, "KEELSON_USERS_PASSWORD_RESET_TTL_SECONDS", 1800, minimum=1)
            ),
            link_resend_interval=timedelta(seconds=seconds(env, "KEELSON_USERS_LINK_RESEND_SECONDS", 60, minimum=0)),
            # A placeholder that is plainly one (RFC 2606): the operator knows no front end.
            links_url=envconfig.text(env, "KEELSON_USERS_LINKS_URL", f"https://{settings.platform}.invalid/account"),
            argon2_time_cost=envconfig.whole(env, "KEELSON_USERS_ARGON2_TIME_COST", 2, minimum=1),
            argon2_memory_kib=envconfig.whole(env, "KEELSON_USERS_ARGON2_MEMORY_KIB", 19456, minimum=8),
            argon2_parallelism=envconfig.whole(env, "KEELSON_USERS_ARGON2_PARALLELISM", 1, minimum=1),
            hash_concurrency=envconfig.whole(env, "KEELSON_USERS_HASH_CONCURRENCY", 4, minimum=1),
        )
