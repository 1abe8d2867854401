"""The retrying consumer: at-least-once handling with per-subscription retry topics and a DLQ.

For each subscription (main topic x this service) the consumer reads the main topic and the
subscription's retry topics in one consumer group. A handler that raises sends the message on:
from the main topic to `retry-1`, from `retry-n` to `retry-n+1`, after the last retry to the DLQ
(`keelson.topics` names them all). A message on `retry-n` is not handled before its due time
(`keelson-not-before`, set when it was forwarded): the consumer pauses that partition until then
and keeps fetching everything else, so a poison message never stalls the messages behind it.

An offset is committed only once every message up to it was handled, or forwarded and
acknowledged by the brokers (`acks=all`). Failed messages gather for a moment before they are
sent on (`forward_buffer.py`) and the next batches are handled meanwhile (`commit_queue.py`);
commits go out at most every `commit_interval_seconds`. A crash, a cancellation or a failed
forward before the commit means reading again from the last commit: messages may be handled
twice, never lost. Handlers deduplicate on `Envelope.id`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, get_args

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from keelson.api.v1alpha1 import topic_name
from keelson.topics import Subscription
from keelson_services.messaging import headers
from keelson_services.messaging.clock import SYSTEM_CLOCK, Clock
from keelson_services.messaging.commit_queue import CommitQueue, ForwardFailed
from keelson_services.messaging.dlq import dlq_depths
from keelson_services.messaging.envelope import Envelope, MalformedEvent
from keelson_services.messaging.failures import DeadReason, Forward, due_at, on_failure
from keelson_services.messaging.forward_buffer import ForwardBuffer
from keelson_services.messaging.metrics import MessagingMetrics, default_metrics
from keelson_services.messaging.producer import EventProducer
from keelson_services.messaging.retry_gate import RetryGate
from keelson_services.messaging.schedule import Hop, hops
from keelson_services.observability import spans, tracing
from keelson_services.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]

# While forwards are in flight, poll often enough to commit soon after they are acknowledged.
UNCOMMITTED_POLL_SECONDS = 0.05
MAX_UNCOMMITTED_BATCHES = 64
# Nothing waits on a forward but the commit of its batch, so failed messages gather this long
# before they are sent on (forward_buffer.py).
FORWARD_WINDOW_SECONDS = 0.05
# A held retry partition is released this long after its head falls due, so that the messages
# that fall due just after it are handled in the same pass rather than one wake-up each. A retry
# is never early, and late by at most this (when the consumer keeps up).
RETRY_WINDOW_SECONDS = 0.05


class PermanentError(Exception):
    """Raised by a handler for a message no retry can fix: it goes to the DLQ at once."""


class MissingTopics(RuntimeError):
    """Topics of a subscription do not exist (Keelson's operator creates them; clients never do)."""


@dataclass(frozen=True)
class _Route:
    """What the consumer does with a message read from one topic."""

    subscription: Subscription
    hop: Hop
    handler: Handler
    consumed: Any  # the metric children, looked up once rather than per message
    handled: Any
    failed: Any
    retried: Any
    dead_lettered: Mapping[DeadReason, Any]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, gate: RetryGate[TopicPartition, Any]) -> None:
        self._gate = gate

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self._gate.forget(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


class RetryingConsumer:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        service: str,
        subscriptions: Sequence[Subscription],
        handlers: Mapping[str, Handler],
        producer: EventProducer | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MessagingMetrics | None = None,
        max_records: int = 500,
        poll_seconds: float = 1.0,
        dlq_depth_seconds: float = 30.0,
        error_backoff_seconds: float = 1.0,
        commit_interval_seconds: float = 0.25,
        **kafka_options: Any,
    ) -> None:
        """`handlers` maps each subscription's main topic to its handler. `producer` forwards
        failed messages (by default one of its own). `clock` gives the wall-clock time that due
        times are set and compared with. Extra keyword arguments go to `AIOKafkaConsumer`;
        auto-commit is always off."""
        missing = [s.topic for s in subscriptions if s.topic not in handlers]
        if missing:
            raise ValueError(f"no handler for {', '.join(missing)}")
        self.service = service
        self.subscriptions = tuple(subscriptions)
        self._service_bytes = service.encode()
        self._clock = clock
        self._metrics = metrics or default_metrics()
        self._group_id = group_id
        # Exporting spans: each handler runs in a CONSUMER span of its own (a wrapper chosen here,
        # so the hot loop below does no per-message work for spans when they are off).
        self._spans = spans.recorder(service)
        self._owns_producer = producer is None
        # Its own producer connects as the consumer does (TLS, SASL: the options' security part).
        security = {k: v for k, v in kafka_options.items() if k.startswith(("security_", "ssl_", "sasl_"))}
        self._producer = producer or EventProducer(
            bootstrap_servers=bootstrap_servers, source=service, metrics=self._metrics, **security
        )
        self._routes = {
            hop.topic: self._route(sub, hop, handlers[sub.topic]) for sub in subscriptions for hop in hops(sub)
        }
        self._max_records = max_records
        self._poll_seconds = poll_seconds
        self._dlq_depth_seconds = dlq_depth_seconds
        self._error_backoff_seconds = error_backoff_seconds
        self._commit_interval = commit_interval_seconds
        self._settled: dict[TopicPartition, int] = {}  # handled (and forwarded), not yet committed
        self._last_commit = 0.0
        self._prober: asyncio.Task[None] | None = None
        self._uncommitted: CommitQueue[TopicPartition] = CommitQueue()
        self._forwards = ForwardBuffer(self._producer, window_seconds=FORWARD_WINDOW_SECONDS)
        self._gate: RetryGate[TopicPartition, Any] = RetryGate()
        self._stopping = asyncio.Event()
        # Resuming a partition waits for the fetch in flight; a short fetch wait keeps retries on time.
        options: dict[str, Any] = {"fetch_max_wait_ms": 100, "auto_offset_reset": "earliest", **kafka_options}
        options.update(enable_auto_commit=False)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id, **options)

    @classmethod
    def from_settings(cls, settings: Settings, handlers: Mapping[str, Handler], **kwargs: Any) -> RetryingConsumer:
        """`handlers` may name topics as `entity.action` of the service's domain."""
        return cls(
            bootstrap_servers=settings.require_kafka(),
            group_id=settings.group_id,
            service=settings.service,
            subscriptions=settings.subscriptions(),
            handlers={topic_name(settings.domain, event): handler for event, handler in handlers.items()},
            **{**settings.kafka_security.options(), **kwargs},
        )

    def _route(self, sub: Subscription, hop: Hop, handler: Handler) -> _Route:
        m, labels = self._metrics, (sub.topic, self.service)
        if self._spans is not None:
            handler = self._spans.consuming(handler, topic=hop.topic, group=self._group_id)
        return _Route(
            subscription=sub,
            hop=hop,
            handler=handler,
            consumed=m.consumed.labels(*labels),
            handled=m.handler_seconds.labels(*labels, "ok"),
            failed=m.handler_seconds.labels(*labels, "failed"),
            retried=m.retried.labels(*labels),
            dead_lettered={r: m.dead_lettered.labels(*labels, r) for r in get_args(DeadReason)},
        )

    @property
    def topics(self) -> list[str]:
        """Every topic this consumer reads (main and retry topics) or writes (retry topics, DLQs)."""
        return sorted({*self._routes, *(s.dlq for s in self.subscriptions)})

    async def start(self) -> None:
        if self._owns_producer:
            await self._producer.start()
        await self._consumer.start()
        try:
            missing = sorted(set(self.topics) - set(await self._consumer.topics()))
            if missing:
                raise MissingTopics(
                    f"missing topics: {', '.join(missing)} (the operator creates a subscription's topics from "
                    "the platform spec; is the subscription declared and the platform Ready?)"
                )
            self._consumer.subscribe(sorted(self._routes), listener=_Rebalance(self._gate))
            self._prober = asyncio.create_task(self._probe_dlqs())
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the connections. Commits nothing: what was not committed is read again."""
        if self._prober:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
            self._prober = None
        try:
            await self._consumer.stop()
        finally:
            if self._owns_producer:
                await self._producer.stop()

    async def __aenter__(self) -> RetryingConsumer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def request_stop(self) -> None:
        """Make `run` return after the batch in hand (and its commit); asked before `run`
        started, `run` returns at once. Either way the request is used up: a later `run` consumes."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until `request_stop` or cancellation. Broker trouble while forwarding or
        committing is logged, and what was not committed is read again after a pause."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.poll()
                except (KafkaError, ForwardFailed) as exc:
                    log.warning("messaging: %s; reading again in %ss", exc, self._error_backoff_seconds)
                    await asyncio.sleep(self._error_backoff_seconds)
            try:
                await self.flush()
            except (KafkaError, ForwardFailed) as exc:
                log.warning("messaging: stopping without committing everything (it will be read again): %s", exc)
        finally:
            # Cleared once the stop was honoured, not when `run` begins: a stop requested just
            # before `run` (a service shutting down while its consumer starts) is not lost.
            self._stopping.clear()

    async def poll(self) -> int:
        """Fetch once, handle or forward what came (and the retries that fell due), commit what
        is settled. Returns the number of messages fetched."""
        now = self._clock.now()
        assigned = self._consumer.assignment()
        due = {tp: waiting for tp, waiting in self._gate.release(now) if tp in assigned}
        wait = self._gate.wait(now)
        timeout = self._poll_seconds if wait is None else min(self._poll_seconds, wait)
        if self._uncommitted or self._settled or due:
            timeout = min(timeout, 0 if due else UNCOMMITTED_POLL_SECONDS)
        forwards_wait = self._forwards.wait(now)
        if forwards_wait is not None:
            timeout = min(timeout, forwards_wait)
        fetched = await self._consumer.getmany(timeout_ms=math.ceil(timeout * 1000), max_records=self._max_records)
        for tp, records in fetched.items():
            self._routes[tp.topic].consumed.inc(len(records))
        if fetched or due:
            await self._process({**due, **fetched})  # a held partition is paused: never in both
        if self._forwards.wait(self._clock.now()) == 0:
            await self._forwards.send()
        if len(self._uncommitted) > MAX_UNCOMMITTED_BATCHES:  # the brokers are slow: do not run ahead
            await self._forwards.send()  # (what the oldest batch waits for may still be here)
            await asyncio.gather(*self._uncommitted.oldest_deliveries(), return_exceptions=True)
        await self._commit()
        return sum(len(records) for records in fetched.values())

    async def flush(self) -> None:
        """Send the failed messages that wait, wait for every forward in flight, and commit all
        that was handled."""
        await self._forwards.send()
        while self._uncommitted:
            await asyncio.gather(*self._uncommitted.oldest_deliveries(), return_exceptions=True)
            await self._commit(now=True)
        await self._commit(now=True)

    async def _commit(self, *, now: bool = False) -> None:
        """Commit what is settled, at most every `commit_interval_seconds` unless `now`."""
        try:
            self._settled.update(self._uncommitted.settled())
        except ForwardFailed as failed:
            self._forwards.discard()
            self._rewind(failed.rewind)
            raise
        clock = asyncio.get_running_loop().time()
        if self._settled and (now or clock - self._last_commit >= self._commit_interval):
            # Partitions lost in a rebalance are not ours to commit: their new owner reads them again.
            assigned = self._consumer.assignment()
            offsets = {tp: offset for tp, offset in self._settled.items() if tp in assigned}
            self._settled, self._last_commit = {}, clock
            if offsets:
                await self._consumer.commit(offsets)

    def _rewind(self, positions: Mapping[TopicPartition, int]) -> None:
        """Read these partitions again from these offsets (nothing from there on is committed)."""
        assigned, paused = self._consumer.assignment(), self._consumer.paused()
        self._gate.forget(positions)
        for tp, offset in positions.items():
            if tp in assigned:
                if tp in paused:
                    self._consumer.resume(tp)
                self._consumer.seek(tp, offset)

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        failures: list[tuple[Forward, Any]] = []
        deliveries: list[asyncio.Future[Any]] = []
        offsets: dict[TopicPartition, int] = {}
        try:
            for tp, records in batch.items():
                route = self._routes[tp.topic]
                due = self._due(tp, route, records) if route.hop.retries else records
                if due:
                    await self._handle(route, due, failures)
                    offsets[tp] = due[-1].offset + 1
            now = self._clock.now()
            for forward, record in failures:
                # A failed message keeps its partition number, and so its place among its key's.
                message = (record.key, record.value, forward.headers)
                sent = self._forwards.add(forward.topic, record.partition, message, now=now)
                if not deliveries or deliveries[-1] is not sent:
                    deliveries.append(sent)
        except Exception:
            # A failed message could not even be handed to the producer: read it all again.
            self._forwards.discard()
            rewind = self._uncommitted.drop()
            for tp, records in batch.items():
                rewind[tp] = min(records[0].offset, rewind.get(tp, records[0].offset))
            self._rewind(rewind)
            raise
        self._uncommitted.add(offsets, {tp: records[0].offset for tp, records in batch.items()}, deliveries)
        self._record_lag(batch, offsets)

    def _due(self, tp: TopicPartition, route: _Route, records: list[Any]) -> list[Any]:
        """The records of a retry topic that are due. The partition is paused and held, with the
        records behind, at the first that is not, until it is; and resumed once none wait."""
        now = self._clock.now()
        for index, record in enumerate(records):
            due = due_at(record.headers, timestamp_ms=record.timestamp, delay=route.hop.delay)
            if due > now:
                self._consumer.pause(tp)
                self._gate.hold(tp, due + RETRY_WINDOW_SECONDS, records[index:])
                return records[:index]
        if tp in self._consumer.paused():
            self._consumer.resume(tp)
        return records

    async def _handle(self, route: _Route, records: list[Any], failures: list[tuple[Forward, Any]]) -> None:
        """Handle records of one partition in order, forwarding those that fail. One coroutine for
        all of them, and everything per record inline: this is the consumer's hot loop."""
        handler, first_attempt, handled, failed = route.handler, not route.hop.retries, route.handled, route.failed
        restore = tracing.enter(None)  # once per batch, not per record
        try:
            for record in records:
                trace = None
                for name, value in record.headers:
                    if name == tracing.HEADER:
                        trace = value
                    elif name == headers.REPLAY_FOR and value != self._service_bytes and first_attempt:
                        break  # a replay from another subscriber's DLQ: not ours to handle
                else:
                    try:
                        envelope = Envelope.from_json(record.value)
                    except MalformedEvent as exc:
                        self._fail(route, record, exc, "malformed", failures)
                        continue
                    # The handler's logs, calls and events continue the message's trace (the
                    # header is parsed only if something asks for it).
                    tracing.enter(trace)
                    started = perf_counter()
                    try:
                        await handler(envelope)
                    except Exception as exc:
                        failed.observe(perf_counter() - started)
                        give_up: DeadReason | None = "permanent" if isinstance(exc, PermanentError) else None
                        self._fail(route, record, exc, give_up, failures)
                    else:
                        handled.observe(perf_counter() - started)
        finally:
            tracing.leave(restore)

    def _fail(
        self, route: _Route, record: Any, error: Exception, give_up: DeadReason | None, failures: list[Any]
    ) -> None:
        """Decide where a failed message goes next; it is sent there after the batch."""
        forward = on_failure(
            route.subscription,
            retries=route.hop.retries,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            record_headers=record.headers,
            error=error,
            now=self._clock.now(),
            give_up=give_up,
        )
        failures.append((forward, record))
        where = (record.topic, record.partition, record.offset, forward.topic)
        if forward.dead_reason:
            route.dead_lettered[forward.dead_reason].inc()
            log.warning("messaging: %s/%d@%d to %s (%s): %s", *where, forward.dead_reason, forward.error)
        else:
            route.retried.inc()
            log.info("messaging: %s/%d@%d to %s in %ss: %s", *where, forward.delay, forward.error)

    def _record_lag(self, batch: dict[TopicPartition, list[Any]], handled: dict[TopicPartition, int]) -> None:
        for tp, records in batch.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                # With nothing handled the partition is held at its first record.
                position = handled.get(tp, records[0].offset)
                self._metrics.lag.labels(tp.topic, str(tp.partition), self.service).set(max(0, highwater - position))

    async def _probe_dlqs(self) -> None:
        """Keep the DLQ depth gauges current, beside the consume loop rather than in its way."""
        while True:
            # A DLQ has its main topic's partitions (keelson.topics), and the main topic is subscribed.
            counts = {s.dlq: len(self._consumer.partitions_for_topic(s.topic) or ()) for s in self.subscriptions}
            known = {dlq: count for dlq, count in counts.items() if count}
            try:
                depths = await dlq_depths(self._consumer, known)
            except Exception as exc:  # a gauge must never take the consumer down
                log.debug("messaging: DLQ depth unavailable: %s", exc)
            else:
                for sub in self.subscriptions:
                    if sub.dlq in depths:
                        self._metrics.dlq_depth.labels(sub.topic, self.service).set(depths[sub.dlq])
            # Until the first assignment the partition counts are unknown: look again soon.
            await asyncio.sleep(self._dlq_depth_seconds if len(known) == len(counts) else 1.0)
