"""What a call to a downstream raises when it cannot give an answer. Each is an `ApiError`, so a
service that lets one propagate answers in the one error format with the right status: 503 with
`Retry-After` while a circuit is open or a downstream unreachable, 504 on a timeout.

Such an answer also names the service that failed in `X-Keelson-Failed-Service`. The caller one
hop up learns from it that the service it called is working and only passing on another's
failure: it neither counts the answer against that service's breaker nor retries it (the hop
next to the failure already did, and retrying at every layer multiplies the load on a service
that is already struggling). Without it, payments being down would open the gateway's breaker
for orders too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from keelson_services.errors import ApiError

FAILED_SERVICE_HEADER = "x-keelson-failed-service"


def failed_service(headers: Mapping[str, str]) -> str | None:
    """The service an error answer says failed (httpx headers are case-insensitive), if any."""
    return headers.get(FAILED_SERVICE_HEADER) or None


class DownstreamError(ApiError):
    def __init__(
        self, status: int, code: str, message: str, *, downstream: str, retry_after: float | None = None
    ) -> None:
        details: dict[str, object] = {"service": downstream}
        headers = {FAILED_SERVICE_HEADER: downstream}
        if retry_after is not None:
            seconds = max(1, math.ceil(retry_after))  # Retry-After is whole seconds; never "now"
            details["retry_after_seconds"] = seconds
            headers["Retry-After"] = str(seconds)
        super().__init__(status, code, message, details=details, headers=headers)
        self.downstream = downstream


class CircuitOpenError(DownstreamError):
    """The downstream failed repeatedly; calls fail fast until its breaker lets a probe through."""

    def __init__(self, downstream: str, retry_after: float) -> None:
        super().__init__(
            503,
            "service_unavailable",
            f"The {downstream} service is unavailable (circuit open); retry later",
            downstream=downstream,
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class DownstreamTimeoutError(DownstreamError):
    def __init__(self, downstream: str, timeout_seconds: float) -> None:
        super().__init__(
            504,
            "downstream_timeout",
            f"The {downstream} service did not answer within {timeout_seconds:g} s",
            downstream=downstream,
        )


class DownstreamUnreachableError(DownstreamError):
    def __init__(self, downstream: str, reason: str) -> None:
        super().__init__(
            503,
            "service_unavailable",
            f"The {downstream} service is unreachable ({reason})",
            downstream=downstream,
            retry_after=1,
        )


class DeadlineExceededError(DownstreamError):
    """The request's deadline (its caller's timeout, see `deadline.py`) left no time to call."""

    def __init__(self, downstream: str) -> None:
        super().__init__(
            504,
            "deadline_exceeded",
            f"No time was left to call the {downstream} service within the request's deadline",
            downstream=downstream,
        )
