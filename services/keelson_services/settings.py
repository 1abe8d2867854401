"""A service's settings, read from the environment the operator renders into its ConfigMap
(`operator/keelson/render/configmap.py`) and the database Secret's `KEELSON_DATABASE_URI`. Extend
it here.

Nothing here has a fallback default that could hide a broken deployment: a missing or malformed
variable is a `SettingsError` naming it, raised at start-up rather than on the first message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from keelson.kafkaclient import PLAINTEXT, KafkaSecurity, KafkaSecurityError
from keelson.kafkausers import consumer_group
from keelson.topics import Subscription
from keelson_services.callers import CallerPolicy


class SettingsError(ValueError):
    """The environment does not describe a runnable service."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set (the operator renders it into the service's ConfigMap)")
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _ints(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in _required(env, name).split(","))
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated whole seconds, got {env.get(name)!r}") from None
    if any(v < 0 for v in values):
        raise SettingsError(f"{name} must not be negative, got {env.get(name)!r}")
    return values


def _number(env: Mapping[str, str], name: str, *, whole: bool = False) -> float:
    raw = _required(env, name)
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


def _json(env: Mapping[str, str], name: str, default: str) -> object:
    raw = env.get(name, "").strip() or default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise SettingsError(f"{name} is not valid JSON: {err}") from None


def _service_urls(env: Mapping[str, str]) -> dict[str, str]:
    value = _json(env, "KEELSON_SERVICE_URLS", "{}")
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SettingsError("KEELSON_SERVICE_URLS must be a JSON object of service name to URL")
    return value


def _callers(env: Mapping[str, str]) -> CallerPolicy | None:
    try:
        return CallerPolicy.from_env(env)
    except ValueError as err:
        raise SettingsError(str(err)) from None


def _routes(env: Mapping[str, str]) -> tuple[Route, ...]:
    value = _json(env, "KEELSON_ROUTES", "[]")
    problem = SettingsError("KEELSON_ROUTES must be a JSON list of {path, service, url}")
    if not isinstance(value, list):
        raise problem
    try:
        return tuple(Route(path=str(r["path"]), service=str(r["service"]), url=str(r["url"])) for r in value)
    except (KeyError, TypeError):
        raise problem from None


@dataclass(frozen=True)
class Route:
    """A public path prefix the gateway sends to a service (the gateway's KEELSON_ROUTES)."""

    path: str
    service: str
    url: str


@dataclass(frozen=True)
class Settings:
    service: str
    domain: str
    kafka_bootstrap: str | None  # unset for services that neither publish nor subscribe
    publishes: tuple[str, ...]  # full topic names
    subscribes: tuple[str, ...]  # full topic names
    retry_backoff_seconds: tuple[int, ...]
    retry_max: int
    # HTTP, health and database. The defaults are the design's values and serve tests that build
    # Settings directly; `from_env` requires every key the operator always renders.
    platform: str = ""
    port: int = 8080
    http_timeout_seconds: float = 5.0
    breaker_failures: int = 3
    breaker_open_seconds: float = 30.0
    service_urls: Mapping[str, str] = field(default_factory=dict)  # downstream name -> base URL
    routes: tuple[Route, ...] = ()  # the gateway's only
    database_uri: str | None = field(default=None, repr=False)  # a libpq URI with a password: never logged
    # TLS and SASL to the brokers (KEELSON_KAFKA_SECURITY_PROTOCOL, _SASL_MECHANISM, _USERNAME,
    # _PASSWORD from the service's Secret, _CA or _CA_FILE); its repr hides the password.
    kafka_security: KafkaSecurity = PLAINTEXT
    log_level: str = "INFO"
    # Who may call this service (None: a service not run by the operator, which believes identity
    # headers as before) and where its tokens for the services it calls are: auth.callers.
    callers: CallerPolicy | None = None
    call_tokens_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        retry_max = _required(env, "KEELSON_RETRY_MAX")
        if not retry_max.isdigit():
            raise SettingsError(f"KEELSON_RETRY_MAX must be a whole number, got {retry_max!r}")
        backoff = _ints(env, "KEELSON_RETRY_BACKOFF_SECONDS")
        try:
            kafka_security = KafkaSecurity.from_env(env)
        except KafkaSecurityError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            service=_required(env, "KEELSON_SERVICE"),
            domain=_required(env, "KEELSON_DOMAIN"),
            kafka_bootstrap=env.get("KEELSON_KAFKA_BOOTSTRAP", "").strip() or None,
            publishes=_names(env, "KEELSON_PUBLISHES"),
            subscribes=_names(env, "KEELSON_SUBSCRIBES"),
            retry_backoff_seconds=backoff,
            retry_max=int(retry_max),
            platform=_required(env, "KEELSON_PLATFORM"),
            port=int(_number(env, "KEELSON_PORT", whole=True)),
            http_timeout_seconds=_number(env, "KEELSON_HTTP_TIMEOUT_SECONDS"),
            breaker_failures=int(_number(env, "KEELSON_BREAKER_FAILURES", whole=True)),
            breaker_open_seconds=_number(env, "KEELSON_BREAKER_OPEN_SECONDS"),
            service_urls=_service_urls(env),
            routes=_routes(env),
            database_uri=env.get("KEELSON_DATABASE_URI", "").strip() or None,
            log_level=env.get("KEELSON_LOG_LEVEL", "").strip().upper() or "INFO",
            kafka_security=kafka_security,
            callers=_callers(env),
            call_tokens_dir=env.get("KEELSON_CALL_TOKENS_DIR", "").strip() or None,
        )

    @property
    def group_id(self) -> str:
        """The consumer group: one per service of a domain, shared by its replicas."""
        return consumer_group(self.domain, self.service)

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap:
            raise SettingsError(
                "KEELSON_KAFKA_BOOTSTRAP is not set: the platform has no spec.kafka.bootstrapServers, "
                "or this service declares no publishes/subscribes"
            )
        return self.kafka_bootstrap

    def require_database(self) -> str:
        if not self.database_uri:
            raise SettingsError(
                "KEELSON_DATABASE_URI is not set: the service declares no `database:` in the platform spec, "
                "or its database Secret is missing"
            )
        return self.database_uri

    def service_url(self, name: str) -> str:
        try:
            return self.service_urls[name]
        except KeyError:
            raise SettingsError(
                f"{self.service} does not call {name!r}: add it to the service's `calls` in the platform spec"
            ) from None

    def subscriptions(self) -> list[Subscription]:
        """The same subscriptions, retry topics, delays and DLQs the operator provisions."""
        # Imported here: the messaging package imports this module, so a top-level import of it
        # would make importing the settings first a circular import.
        from keelson_services.messaging.schedule import subscription

        return [
            subscription(topic, self.service, backoff_seconds=self.retry_backoff_seconds, max_retries=self.retry_max)
            for topic in self.subscribes
        ]
