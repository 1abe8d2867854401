"""Idempotency keys in a service's own database: replay, reuse refusal (422), in-flight refusal (409)."""

from keelson_services.idempotency.store import (
    HEADER,
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
    "IdempotencyStore",
    "KeyReusedError",
    "RequestInFlightError",
    "StoredResponse",
    "fingerprint",
    "migrations",
    "validate_key",
]
