"""The fake payment provider (deduplication by key, latency, failure rate, all with injected
randomness and sleep) and the payments service's settings."""

from __future__ import annotations

import pytest

from keelson_services.services.payments.config import PaymentsConfig
from keelson_services.services.payments.provider import FakeProvider, MemoryLedger, ProviderKeyReusedError
from keelson_services.settings import SettingsError
from tests.unit.svc_helpers import RecordingSleep


def provider(*draws: float, failure_rate: float = 0.0, latency: float = 0.0) -> tuple[FakeProvider, RecordingSleep]:
    values = list(draws) or [0.5]
    sleep = RecordingSleep()
    fake = FakeProvider(
        MemoryLedger(),
        latency_seconds=latency,
        failure_rate=failure_rate,
        random=lambda: values.pop(0) if len(values) > 1 else values[0],
        sleep=sleep,
    )
    return fake, sleep


async def test_the_same_key_never_charges_twice() -> None:
    fake, sleep = provider(latency=0.2)
    first = await fake.charge(key="charge:1", amount_cents=500, currency="EUR", customer_id="u")
    again = await fake.charge(key="charge:1", amount_cents=500, currency="EUR", customer_id="u")
    other = await fake.charge(key="charge:2", amount_cents=500, currency="EUR", customer_id="u")
    assert first == again and first.succeeded and first.reference.startswith("ch_")
    assert other.reference != first.reference
    assert sleep.delays == [0.2, 0.2]  # a repeat answers from the ledger, at once
    assert len(fake.ledger.operations) == 2  # type: ignore[attr-defined]


async def test_a_key_reused_for_another_operation_is_a_caller_bug() -> None:
    fake, _ = provider()
    await fake.charge(key="k", amount_cents=500, currency="EUR", customer_id="u")
    with pytest.raises(ProviderKeyReusedError):
        await fake.charge(key="k", amount_cents=501, currency="EUR", customer_id="u")
    with pytest.raises(ProviderKeyReusedError):
        await fake.refund(key="k", charge_reference="ch", amount_cents=500)


async def test_the_failure_rate_declines_charges_and_a_declined_key_stays_declined() -> None:
    fake, _ = provider(0.05, 0.5, failure_rate=0.1)
    declined = await fake.charge(key="a", amount_cents=100, currency="EUR", customer_id="u")
    accepted = await fake.charge(key="b", amount_cents=100, currency="EUR", customer_id="u")
    assert (declined.succeeded, declined.failure_code) == (False, "card_declined")
    assert accepted.succeeded
    assert await fake.charge(key="a", amount_cents=100, currency="EUR", customer_id="u") == declined
    always, _ = provider(failure_rate=1.0)
    never, _ = provider(0.999, failure_rate=0.0)
    assert not (await always.charge(key="x", amount_cents=1, currency="EUR", customer_id="u")).succeeded
    assert (await never.charge(key="x", amount_cents=1, currency="EUR", customer_id="u")).succeeded


async def test_refunds_succeed_once_per_key() -> None:
    fake, _ = provider()
    first = await fake.refund(key="refund:1", charge_reference="ch_1", amount_cents=300)
    assert first.succeeded and first.reference.startswith("re_")
    assert await fake.refund(key="refund:1", charge_reference="ch_1", amount_cents=300) == first


def test_settings_from_env() -> None:
    assert PaymentsConfig.from_env({}) == PaymentsConfig()
    config = PaymentsConfig.from_env(
        {"KEELSON_PAYMENTS_FAKE_LATENCY_MS": "250", "KEELSON_PAYMENTS_FAKE_FAILURE_RATE": "0.2"}
    )
    assert (config.fake_latency_seconds, config.fake_failure_rate) == (0.25, 0.2)
    for env in (
        {"KEELSON_PAYMENTS_FAKE_FAILURE_RATE": "1.5"},
        {"KEELSON_PAYMENTS_FAKE_FAILURE_RATE": "-0.1"},
        {"KEELSON_PAYMENTS_FAKE_LATENCY_MS": "soon"},
        {"KEELSON_PAYMENTS_PROVIDER": "stripe"},
    ):
        with pytest.raises(SettingsError):
            PaymentsConfig.from_env(env)
    with pytest.raises(ValueError, match="failure_rate"):
        FakeProvider(MemoryLedger(), failure_rate=2)
