"""Publishing events: one JSON envelope per message, keyed by the entity id (so that one entity's
events stay in order on one partition), `acks=all` with the idempotent producer (no loss and no
duplicates from the producer's own retries), and a W3C `traceparent` header: a child of the
current span, exported as the event's PRODUCER span when spans are (`observability.spans`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from keelson.api.v1alpha1 import topic_name
from keelson_services.messaging.clock import SYSTEM_CLOCK, Clock
from keelson_services.messaging.envelope import Envelope, new_envelope
from keelson_services.messaging.headers import Headers
from keelson_services.messaging.metrics import MessagingMetrics, default_metrics
from keelson_services.observability import spans, tracing
from keelson_services.settings import Settings


class UndeclaredTopic(ValueError):
    """A service published an event its platform spec does not declare in `publishes`."""


class EventProducer:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        source: str,
        domain: str | None = None,
        publishes: Collection[str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MessagingMetrics | None = None,
        **kafka_options: Any,
    ) -> None:
        """`source`: the publishing service. `domain`: the platform's, for events named
        `entity.action` (without it, events need full topic names). `publishes`: the full topic
        names this service may publish to (None: any). Extra keyword arguments go to
        `AIOKafkaProducer`, but never weaken `acks` or idempotence."""
        self.source = source
        self.domain = domain
        self._publishes = frozenset(publishes) if publishes is not None else None
        self._clock = clock
        self._metrics = metrics or default_metrics()
        self._spans = spans.recorder(source)  # None unless spans are exported
        client_id = f"{domain}.{source}" if domain else source
        options: dict[str, Any] = {"linger_ms": 5, "client_id": client_id, **kafka_options}
        options.update(acks="all", enable_idempotence=True)
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> EventProducer:
        return cls(
            bootstrap_servers=settings.require_kafka(),
            source=settings.service,
            domain=settings.domain,
            publishes=settings.publishes,
            **{**settings.kafka_security.options(), **kwargs},
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.stop()

    async def publish(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        key: str,
        event_id: str | None = None,
        schema_version: int = 1,
        trace: tracing.TraceContext | None = None,
    ) -> Envelope:
        """Publish `data` as `event` (`entity.action` of this domain, or a full topic name) and wait
        until all in-sync replicas have it. `key` is the entity id; `event_id` defaults to a new
        UUID (pass your own to make a re-publish after a crash recognisable as the same event)."""
        if event.count(".") != 2 and not self.domain:
            raise ValueError(f"{event!r} is not a full topic name and the producer has no domain")
        topic = topic_name(self.domain or "", event)
        if self._publishes is not None and topic not in self._publishes:
            raise UndeclaredTopic(
                f"{self.source} does not publish {topic}: add it to the service's publishes in the platform spec"
            )
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        envelope = new_envelope(
            topic, data, source=self.source, time=now, event_id=event_id, schema_version=schema_version
        )
        parent = trace or tracing.current()
        span = tracing.outgoing(parent)
        headers = [(tracing.HEADER, span.header().encode())]
        if self._spans is None:
            await (await self.send(topic, key=key.encode(), value=envelope.to_json(), headers=headers))
            return envelope
        start_ns, error = time.time_ns(), None
        try:
            await (await self.send(topic, key=key.encode(), value=envelope.to_json(), headers=headers))
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            self._spans.producer(
                span, parent, topic=topic, key=key, message_id=envelope.id, start_ns=start_ns, error=error
            )
        return envelope

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers
    ) -> asyncio.Future[Any]:
        """Hand one raw message to the producer; the returned future completes when the brokers
        have it. Used to forward messages unchanged to retry topics, DLQs and for replays."""
        delivery: asyncio.Future[Any] = await self._producer.send(topic, value=value, key=key, headers=headers)
        delivery.add_done_callback(lambda done: self._count(done, topic))
        return delivery

    async def send_batch(
        self, topic: str, partition: int, messages: Sequence[tuple[bytes | None, bytes | None, Headers]]
    ) -> list[asyncio.Future[Any]]:
        """Hand raw messages (key, value, headers) for one partition to the producer as record
        batches: far cheaper per message than `send`. The futures complete when the brokers have
        each batch. How the consumer forwards failed messages."""
        known = await self._producer.partitions_for(topic)
        if partition not in known:  # the operator gives retry topics and DLQs the main topic's count
            partition %= len(known)
        deliveries: list[asyncio.Future[Any]] = []
        batch, count = self._producer.create_batch(), 0
        for key, value, headers in messages:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                deliveries.append(await self._submit(batch, topic, partition, count))
                batch, count = self._producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"a message for {topic} is larger than a record batch may be")
            count += 1
        if count:
            deliveries.append(await self._submit(batch, topic, partition, count))
        return deliveries

    async def _submit(self, batch: Any, topic: str, partition: int, count: int) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = await self._producer.send_batch(batch, topic, partition=partition)
        delivery.add_done_callback(lambda done: self._count(done, topic, count))
        return delivery

    def _count(self, delivery: asyncio.Future[Any], topic: str, count: int = 1) -> None:
        if not delivery.cancelled() and delivery.exception() is None:
            self._metrics.produced.labels(topic).inc(count)
