"""Idempotency keys in a service's own database: replay, reuse refusal (422), in-flight refusal (409)."""

from keelson_services.idempotency.purger import IdempotencyPurger
from keelson_services.idempotency.store import (
    HEADER,
    RETENTION,
    IdempotencyStore,
    KeyReusedError,
    RequestInFlightError,
    StoredResponse,
    fingerprint,
    migrations,
    validate_key,
)

__all__ = [
    "HEADER",
    "RETENTION",
    "IdempotencyPurger",
    "IdempotencyStore",
    "KeyReusedError",
    "RequestInFlightError",
    "StoredResponse",
    "fingerprint",
    "migrations",
    "validate_key",
]
