"""The resilient service-to-service HTTP client: timeouts, circuit breakers, safe retries, trace
and identity propagation."""

from keelson_services.http import deadline
from keelson_services.http.breaker import BreakerState, CircuitBreaker
from keelson_services.http.client import ServiceClient
from keelson_services.http.errors import (
    CircuitOpenError,
    DownstreamError,
    DownstreamTimeoutError,
    DownstreamUnreachableError,
)
from keelson_services.http.retry import RetryPolicy, may_retry

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "DownstreamError",
    "DownstreamTimeoutError",
    "DownstreamUnreachableError",
    "RetryPolicy",
    "ServiceClient",
    "deadline",
    "may_retry",
]
