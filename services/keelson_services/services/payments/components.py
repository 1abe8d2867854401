"""Everything the payments service's routes work with, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from keelson_services.db import Database
from keelson_services.events import Outbox, OutboxRelay
from keelson_services.idempotency import IdempotencyPurger, IdempotencyStore
from keelson_services.messaging import EventProducer
from keelson_services.services.payments.charges import Charges
from keelson_services.services.payments.config import PaymentsConfig
from keelson_services.services.payments.provider import DatabaseLedger, FakeProvider, PaymentProvider
from keelson_services.services.payments.repository import PaymentRepository
from keelson_services.settings import Settings


@dataclass(frozen=True)
class PaymentsComponents:
    config: PaymentsConfig
    db: Database
    payments: PaymentRepository
    provider: PaymentProvider
    idempotency: IdempotencyStore
    purger: IdempotencyPurger
    outbox: Outbox
    relay: OutboxRelay
    charges: Charges

    @classmethod
    def build(
        cls, settings: Settings, config: PaymentsConfig, *, provider: PaymentProvider | None = None
    ) -> PaymentsComponents:
        """`provider`: for tests; the configured one otherwise."""
        db = Database(settings.require_database(), application_name="payments")
        payments = PaymentRepository(db)
        provider = provider or FakeProvider(
            DatabaseLedger(db),
            latency_seconds=config.fake_latency_seconds,
            failure_rate=config.fake_failure_rate,
            refund_failure_rate=config.fake_refund_failure_rate,
        )
        outbox = Outbox(domain=settings.domain, publishes=settings.publishes)
        relay = OutboxRelay(
            db,
            (lambda: EventProducer.from_settings(settings)) if settings.kafka_bootstrap else None,
            service=settings.service,
        )
        idempotency = IdempotencyStore(db, lease=timedelta(seconds=config.idempotency_lease_seconds))
        return cls(
            config=config,
            db=db,
            payments=payments,
            provider=provider,
            idempotency=idempotency,
            purger=IdempotencyPurger(idempotency),
            outbox=outbox,
            relay=relay,
            charges=Charges(db, payments, provider, outbox),
        )
