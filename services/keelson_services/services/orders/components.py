"""Everything the orders service's routes and handlers work with, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from keelson_services.db import Database
from keelson_services.events import ConsumerRunner, Outbox, OutboxRelay
from keelson_services.http import ServiceClient
from keelson_services.http.breaker import MonotonicClock
from keelson_services.idempotency import IdempotencyPurger, IdempotencyStore
from keelson_services.messaging import EventProducer, RetryingConsumer
from keelson_services.services.orders.catalogue import Catalogue
from keelson_services.services.orders.config import OrdersConfig
from keelson_services.services.orders.flows import OrderFlows
from keelson_services.services.orders.handlers import handlers
from keelson_services.services.orders.payments_client import PaymentsClient
from keelson_services.services.orders.repository import OrderRepository
from keelson_services.services.orders.resumer import PendingOrderResumer
from keelson_services.settings import Settings


@dataclass(frozen=True)
class OrdersComponents:
    config: OrdersConfig
    db: Database
    client: ServiceClient
    orders: OrderRepository
    catalogue: Catalogue
    idempotency: IdempotencyStore
    purger: IdempotencyPurger
    outbox: Outbox
    relay: OutboxRelay
    flows: OrderFlows
    resumer: PendingOrderResumer
    consumer: ConsumerRunner | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        config: OrdersConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: MonotonicClock | None = None,
    ) -> OrdersComponents:
        """`transport` and `clock` are for tests: an in-process payments and a controllable time."""
        db = Database(settings.require_database(), application_name="orders")
        timing: dict[str, Any] = {"clock": clock} if clock is not None else {}
        client = ServiceClient.from_settings(settings, transport=transport, **timing)
        orders = OrderRepository(db)
        outbox = Outbox(domain=settings.domain, publishes=settings.publishes)
        catalogue = Catalogue(db)
        flows = OrderFlows(db, orders, catalogue, PaymentsClient(client), outbox)
        kafka = settings.kafka_bootstrap is not None
        consumer = None
        if kafka and settings.subscribes:
            consumer = ConsumerRunner(
                lambda: RetryingConsumer.from_settings(settings, handlers(flows, orders)), name=settings.service
            )
        idempotency = IdempotencyStore(db, lease=timedelta(seconds=config.idempotency_lease_seconds))
        return cls(
            config=config,
            db=db,
            client=client,
            orders=orders,
            catalogue=catalogue,
            idempotency=idempotency,
            purger=IdempotencyPurger(idempotency),
            outbox=outbox,
            relay=OutboxRelay(
                db, (lambda: EventProducer.from_settings(settings)) if kafka else None, service=settings.service
            ),
            flows=flows,
            resumer=PendingOrderResumer(
                flows,
                orders,
                after_seconds=config.resume_after_seconds,
                interval_seconds=config.resume_interval_seconds,
            ),
            consumer=consumer,
        )
