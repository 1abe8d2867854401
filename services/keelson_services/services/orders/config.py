"""The orders service's own settings, each optional with the default shown:

| variable                                   | default |                                                       |
| ---                                        | ---     | ---                                                   |
| `KEELSON_ORDERS_IDEMPOTENCY_LEASE_SECONDS` | 120     | how long a crashed creation's key stays claimed       |
| `KEELSON_ORDERS_PAGE_LIMIT`                | 50      | orders per page of `GET /api/v1/orders` (`limit` <= 100) |
| `KEELSON_ORDERS_RESUME_AFTER_SECONDS`      | 300     | a pending order untouched this long is resumed (`resumer.py`) |
| `KEELSON_ORDERS_RESUME_INTERVAL_SECONDS`   | 30      | how often each replica looks for them (jittered)      |

The lease outlasts a payment call with all its retries (4 attempts of 5 s, 7 s of backoff); the
resumer waits longer than the lease, so it never races the request that created an order.

Its resilience towards payments (timeout, breaker, retries) is the platform's, from the ConfigMap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from keelson_services import envconfig


@dataclass(frozen=True)
class OrdersConfig:
    idempotency_lease_seconds: float = 120.0
    page_limit: int = 50
    resume_after_seconds: float = 300.0
    resume_interval_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OrdersConfig:
        env = os.environ if env is None else env
        return cls(
            idempotency_lease_seconds=envconfig.number(env, "KEELSON_ORDERS_IDEMPOTENCY_LEASE_SECONDS", 120, minimum=1),
            page_limit=envconfig.whole(env, "KEELSON_ORDERS_PAGE_LIMIT", 50, minimum=1),
            resume_after_seconds=envconfig.number(env, "KEELSON_ORDERS_RESUME_AFTER_SECONDS", 300, minimum=1),
            resume_interval_seconds=envconfig.number(env, "KEELSON_ORDERS_RESUME_INTERVAL_SECONDS", 30, minimum=0.1),
        )
