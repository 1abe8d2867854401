"""The notifications service's own settings, each optional with the default shown:

| variable                                   | default                      |                                  |
| ---                                        | ---                          | ---                              |
| `KEELSON_SMTP_HOST`                        | unset: emails are recorded, not sent (a warning at start-up) | |
| `KEELSON_SMTP_PORT`                        | 25                           |                                  |
| `KEELSON_SMTP_STARTTLS`                    | false                        | upgrade the connection with STARTTLS |
| `KEELSON_SMTP_USERNAME` / `_PASSWORD`      | unset: no authentication     |                                  |
| `KEELSON_SMTP_TIMEOUT_SECONDS`             | 10                           | per SMTP conversation            |
| `KEELSON_NOTIFICATIONS_FROM`               | `<platform> <no-reply@<platform>.keelson.local>` | the sender of emails |
| `KEELSON_NOTIFICATIONS_SEND_LEASE_SECONDS` | 60                           | a send's bound (`claimed_until`) |

A claimed send's `claimed_until` is for people looking at the table; whether a `sending` row's
sender is still alive is decided by its lock, not by the clock (`repository.sending`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from keelson_services import envconfig
from keelson_services.settings import Settings, SettingsError


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class NotificationsConfig:
    sender: str
    smtp: SmtpConfig | None = None
    send_lease_seconds: float = 60.0

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> NotificationsConfig:
        env = os.environ if env is None else env
        host = env.get("KEELSON_SMTP_HOST", "").strip()
        smtp = None
        if host:
            starttls = envconfig.text(env, "KEELSON_SMTP_STARTTLS", "false").lower()
            if starttls not in ("true", "false"):
                raise SettingsError(f"KEELSON_SMTP_STARTTLS must be true or false, got {starttls!r}")
            smtp = SmtpConfig(
                host=host,
                port=envconfig.whole(env, "KEELSON_SMTP_PORT", 25, minimum=1),
                starttls=starttls == "true",
                username=env.get("KEELSON_SMTP_USERNAME", "").strip() or None,
                password=env.get("KEELSON_SMTP_PASSWORD") or None,
                timeout_seconds=envconfig.number(env, "KEELSON_SMTP_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            )
        platform = settings.platform or "keelson"
        return cls(
            sender=envconfig.text(env, "KEELSON_NOTIFICATIONS_FROM", f"{platform} <no-reply@{platform}.keelson.local>"),
            smtp=smtp,
            send_lease_seconds=envconfig.number(env, "KEELSON_NOTIFICATIONS_SEND_LEASE_SECONDS", 60.0, minimum=1),
        )
