"""What a call to a downstream raises when it cannot give an answer. Each is an `ApiError`, so a
service that lets one propagate answers in the one error format with the right status: 503 with
`Retry-After` while a circuit is open or a downstream unreachable, 504 on a timeout."""

from __future__ import annotations

import math

from keelson_services.errors import ApiError


class DownstreamError(ApiError):
    def __init__(
        self, status: int, code: str, message: str, *, downstream: str, retry_after: float | None = None
    ) -> None:
        details: dict[str, object] = {"service": downstream}
        headers = None
        if retry_after is not None:
            seconds = max(1, math.ceil(retry_after))  # Retry-After is whole seconds; never "now"
            details["retry_after_seconds"] = seconds
            headers = {"Retry-After": str(seconds)}
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
