"""The sizing model: from expected daily users to replicas, HPA bounds and partitions.

Deliberately simple and documented in docs/sizing.md, so that a user can predict it:

- average RPS  = dailyUsers x REQUESTS_PER_USER_PER_DAY / 86 400
- peak RPS     = average RPS x PEAK_TO_AVERAGE
- a replica serves REPLICA_RPS at the HPA's target utilisation, so
  maxReplicas  = ceil(peak RPS / REPLICA_RPS), minReplicas = ceil(average RPS / REPLICA_RPS),
  both clamped to [MIN_REPLICAS, MAX_REPLICAS] (two replicas at least, for availability);
- partitions   = max(MIN_PARTITIONS, maxReplicas): every consumer replica can own a partition
  at peak, and partitions can only ever grow, so they are sized for the peak from the start.

Every service is sized for the whole peak: a conservative upper bound, since the gateway sees
every request and the other services a share of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REQUESTS_PER_USER_PER_DAY = 20
PEAK_TO_AVERAGE = 3.0
REPLICA_RPS = 100.0
MIN_REPLICAS = 2
MAX_REPLICAS = 100
MIN_PARTITIONS = 3
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class SizingResult:
    daily_users: int
    average_rps: float
    peak_rps: float
    min_replicas: int
    max_replicas: int
    partitions: int


def _clamp(value: int) -> int:
    return max(MIN_REPLICAS, min(MAX_REPLICAS, value))


def size_for(daily_users: int) -> SizingResult:
    average = daily_users * REQUESTS_PER_USER_PER_DAY / SECONDS_PER_DAY
    peak = average * PEAK_TO_AVERAGE
    max_replicas = _clamp(math.ceil(peak / REPLICA_RPS))
    min_replicas = min(_clamp(math.ceil(average / REPLICA_RPS)), max_replicas)
    return SizingResult(
        daily_users=daily_users,
        average_rps=round(average, 1),
        peak_rps=round(peak, 1),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        partitions=max(MIN_PARTITIONS, max_replicas),
    )
