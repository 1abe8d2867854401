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
| `KEELSON_SMS_BASE_URL`                     | unset: SMS recorded, not sent | the API, `https://api.twilio.com` |
| `KEELSON_SMS_ACCOUNT` / `_TOKEN` / `_FROM` | required with the base URL   | SID, auth token (Secret), sender |
| `KEELSON_VAPID_PRIVATE_KEY`                | unset: push recorded, not sent | the VAPID P-256 key, PEM (Secret) |
| `KEELSON_VAPID_SUBJECT`                    | `mailto:no-reply@<platform>.keelson.local` | the `sub` claim |
| `KEELSON_PUSH_INSECURE_ENDPOINTS`          | false                        | accept `http://` endpoints (stand-ins) |
| `KEELSON_PHONE_CODE_TTL_SECONDS`           | 600                          | a phone verification code's life |
| `KEELSON_PHONE_CODE_ATTEMPTS`              | 5                            | wrong codes before it is void    |
| `KEELSON_PHONE_CODE_INTERVAL_SECONDS`      | 30                           | the least time between two codes |

SMS and push go over HTTP through the platform's resilient client, so each channel's provider
gets the platform's timeout, circuit breaker and retry schedule (`KEELSON_HTTP_TIMEOUT_SECONDS`,
`KEELSON_BREAKER_*`, `KEELSON_RETRY_*`), as a downstream service would.

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
class SmsConfig:
    """An SMS provider with Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`)."""

    base_url: str
    account: str
    token: str = field(repr=False)
    sender: str = ""


@dataclass(frozen=True)
class PushConfig:
    """Web Push (RFC 8030) with VAPID (RFC 8292): the application server's key and contact."""

    private_key_pem: str = field(repr=False)
    subject: str = ""


@dataclass(frozen=True)
class NotificationsConfig:
    sender: str
    smtp: SmtpConfig | None = None
    send_lease_seconds: float = 60.0
    sms: SmsConfig | None = None
    push: PushConfig | None = None
    insecure_push_endpoints: bool = False
    phone_code_ttl_seconds: float = 600.0
    phone_code_attempts: int = 5
    phone_code_interval_seconds: float = 30.0

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> NotificationsConfig:
        env = os.environ if env is None else env
        host = env.get("KEELSON_SMTP_HOST", "").strip()
        smtp = None
        if host:
            smtp = SmtpConfig(
                host=host,
                port=envconfig.whole(env, "KEELSON_SMTP_PORT", 25, minimum=1),
                starttls=_flag(env, "KEELSON_SMTP_STARTTLS"),
                username=env.get("KEELSON_SMTP_USERNAME", "").strip() or None,
                password=env.get("KEELSON_SMTP_PASSWORD") or None,
                timeout_seconds=envconfig.number(env, "KEELSON_SMTP_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            )
        platform = settings.platform or "keelson"
        return cls(
            sender=envconfig.text(env, "KEELSON_NOTIFICATIONS_FROM", f"{platform} <no-reply@{platform}.keelson.local>"),
            smtp=smtp,
            send_lease_seconds=envconfig.number(env, "KEELSON_NOTIFICATIONS_SEND_LEASE_SECONDS", 60.0, minimum=1),
            sms=_sms(env),
            push=_push(env, platform),
            insecure_push_endpoints=_flag(env, "KEELSON_PUSH_INSECURE_ENDPOINTS"),
            phone_code_ttl_seconds=envconfig.number(env, "KEELSON_PHONE_CODE_TTL_SECONDS", 600.0, minimum=10),
            phone_code_attempts=envconfig.whole(env, "KEELSON_PHONE_CODE_ATTEMPTS", 5, minimum=1),
            phone_code_interval_seconds=envconfig.number(env, "KEELSON_PHONE_CODE_INTERVAL_SECONDS", 30.0),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = envconfig.text(env, name, "false").lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{name} must be true or false, got {value!r}")
    return value == "true"


def _sms(env: Mapping[str, str]) -> SmsConfig | None:
    base_url = env.get("KEELSON_SMS_BASE_URL", "").strip()
    if not base_url:
        return None
    if not base_url.startswith(("https://", "http://")):
        raise SettingsError(f"KEELSON_SMS_BASE_URL must be an http(s) URL, got {base_url!r}")
    names = ("KEELSON_SMS_ACCOUNT", "KEELSON_SMS_TOKEN", "KEELSON_SMS_FROM")
    missing = [n for n in names if not env.get(n, "").strip()]
    if missing:
        # Names only: the token's value never goes into an error.
        raise SettingsError(f"KEELSON_SMS_BASE_URL is set, so {', '.join(missing)} must be too")
    return SmsConfig(
        base_url=base_url.rstrip("/"),
        account=env["KEELSON_SMS_ACCOUNT"].strip(),
        token=env["KEELSON_SMS_TOKEN"].strip(),
        sender=env["KEELSON_SMS_FROM"].strip(),
    )


def _push(env: Mapping[str, str], platform: str) -> PushConfig | None:
    pem = env.get("KEELSON_VAPID_PRIVATE_KEY", "").strip()
    if not pem:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError:
        raise SettingsError("KEELSON_VAPID_PRIVATE_KEY must be a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SettingsError("KEELSON_VAPID_PRIVATE_KEY must be a P-256 (prime256v1) key, as VAPID requires")
    subject = envconfig.text(env, "KEELSON_VAPID_SUBJECT", f"mailto:no-reply@{platform}.keelson.local")
    if not subject.startswith(("mailto:", "https://")):
        raise SettingsError(f"KEELSON_VAPID_SUBJECT must be a mailto: or https: URL, got {subject!r}")
    return PushConfig(private_key_pem=pem, subject=subject)
