"""The payments service's own settings, each optional with the default shown:

| variable                                | default |                                                      |
| ---                                     | ---     | ---                                                  |
| `KEELSON_PAYMENTS_PROVIDER`             | `fake`  | the payment-provider adapter (only the fake ships)   |
| `KEELSON_PAYMENTS_FAKE_LATENCY_MS`      | 0       | the fake provider's time per charge or refund        |
| `KEELSON_PAYMENTS_FAKE_FAILURE_RATE`    | 0       | the share of charges the fake declines, 0 to 1       |
| `KEELSON_PAYMENTS_FAKE_REFUND_FAILURE_RATE` | 0   | the share of refunds the fake declines, 0 to 1       |
| `KEELSON_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS` | 60 | how long a crashed request's key stays claimed       |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from keelson_services import envconfig
from keelson_services.settings import SettingsError


@dataclass(frozen=True)
class PaymentsConfig:
    provider: str = "fake"
    fake_latency_seconds: float = 0.0
    fake_failure_rate: float = 0.0
    fake_refund_failure_rate: float = 0.0
    idempotency_lease_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PaymentsConfig:
        env = os.environ if env is None else env
        provider = envconfig.text(env, "KEELSON_PAYMENTS_PROVIDER", "fake")
        if provider != "fake":
            raise SettingsError(f"KEELSON_PAYMENTS_PROVIDER: unknown provider {provider!r} (this build has: fake)")
        rates = {}
        for name in ("KEELSON_PAYMENTS_FAKE_FAILURE_RATE", "KEELSON_PAYMENTS_FAKE_REFUND_FAILURE_RATE"):
            rates[name] = envconfig.number(env, name, 0.0)
            if rates[name] > 1:
                raise SettingsError(f"{name} must be between 0 and 1, got {rates[name]:g}")
        return cls(
            provider=provider,
            fake_latency_seconds=envconfig.number(env, "KEELSON_PAYMENTS_FAKE_LATENCY_MS", 0.0) / 1000,
            fake_failure_rate=rates["KEELSON_PAYMENTS_FAKE_FAILURE_RATE"],
            fake_refund_failure_rate=rates["KEELSON_PAYMENTS_FAKE_REFUND_FAILURE_RATE"],
            idempotency_lease_seconds=envconfig.number(
                env, "KEELSON_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS", 60.0, minimum=1
            ),
        )
