"""The messaging library against a real broker: retries on schedule, the DLQ, healthy messages
flowing past a poison one, crash safety, and `keelson dlq replay`.

Each test provisions its own platform's topics (a unique domain) exactly as the operator plans
them (`keelson.topics.plan_topics`), and builds its services' settings from the environment the
operator renders (`config_data`), so names, schedules and settings are the real ones end to end.
The broker is the local stack's (`stack.kafka_bootstrap`), or KEELSON_E2E_KAFKA_BOOTSTRAP's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from e2e.kafka_access import broker, options, provision_users, security_of, spec_fields
from e2e.svc_platform import wait_for
from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.kafkaclient import KafkaSecurity
from keelson.render import RenderContext
from keelson.render.configmap import config_data
from keelson.topics import plan_topics
from keelson_services.messaging import Envelope, EventProducer, PermanentError, RetryingConsumer, TraceContext
from keelson_services.messaging import headers as h
from keelson_services.settings import Settings

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The broker, secured as it is (`e2e.kafka_access.KafkaBroker`)."""
    return broker(request)


@dataclass
class Platform:
    """A platform of its own per test: `orders` publishes `order.created`; `shipping` (and
    optionally `audit`) subscribe to it."""

    bootstrap: str
    partitions: int = 3
    audit: bool = False
    domain: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    users: dict[str, KafkaSecurity] = field(default_factory=dict)  # each service's, from create_topics

    @property
    def spec(self) -> MicroservicePlatformSpec:
        subscribers = ["shipping", "audit"] if self.audit else ["shipping"]
        return MicroservicePlatformSpec.model_validate(
            {
                "domain": self.domain,
                "kafka": {
                    "provider": "admin",
                    "bootstrapServers": self.bootstrap,
                    "partitions": self.partitions,
                    "replicationFactor": 1,
                    **spec_fields(self.bootstrap),
                },
                "services": [
                    {"name": "orders", "image": "registry.example/orders:1", "publishes": ["order.created"]},
                    *(
                        {"name": s, "image": f"registry.example/{s}:1", "subscribes": ["order.created"]}
                        for s in subscribers
                    ),
                ],
            }
        )

    @property
    def topic(self) -> str:
        return f"{self.domain}.order.created"

    def settings(self, service: str) -> Settings:
        """As the operator renders them: the ConfigMap, and the service's own Kafka user."""
        ctx = RenderContext(name="shop", namespace="shop", spec=self.spec)
        users = self.users[service].env() if service in self.users else {}
        return Settings.from_env({**config_data(ctx, ctx.service(service)), **users})

    async def create_topics(self) -> None:
        """The topics, and each service's user and ACLs, as the operator plans them."""
        self.users = await provision_users(self.bootstrap, self.spec, namespace=self.domain, platform="shop")
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **options(self.bootstrap))
        await admin.start()
        try:
            planned = [t for t in plan_topics(self.spec) if t.managed]
            await admin.create_topics([NewTopic(t.name, t.partitions, t.replication_factor) for t in planned])
            await wait_for(lambda: _has_topics(admin, {t.name for t in planned}), within=15)
        finally:
            await admin.close()

    def consumer(self, service: str, handler: Callable[[Envelope], Awaitable[None]]) -> RetryingConsumer:
        return RetryingConsumer.from_settings(
            self.settings(service), {"order.created": handler}, poll_seconds=0.2, dlq_depth_seconds=1
        )


def metric(name: str, **labels: str) -> float | None:
    """A sample of the process's default registry, where the library's metrics are."""
    return REGISTRY.get_sample_value(name, labels)


async def _has_topics(admin: AIOKafkaAdminClient, names: set[str]) -> bool:
    """Whether the topics exist and every partition has a leader."""
    if not names <= set(await admin.list_topics()):
        return False
    described = await admin.describe_topics(sorted(names))
    return all(not t["error_code"] and all(p["leader"] >= 0 for p in t["partitions"]) for t in described)


@asynccontextmanager
async def running(consumer: RetryingConsumer) -> AsyncIterator[asyncio.Task[None]]:
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        consumer.request_stop()
        if not task.done():
            await asyncio.wait_for(task, 10)
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic, in partition and offset order (no consumer group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **options(bootstrap)
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await _partitions(bootstrap, topic))]
        end = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options(bootstrap))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return [p["partition"] for p in described["partitions"]]
    finally:
        await admin.close()


async def depth(bootstrap: str, topic: str) -> int:
    return len(await read_topic(bootstrap, topic))


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The sum of a group's committed offsets on a topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **options(bootstrap)
    )
    await consumer.start()
    try:
        total = 0
        for p in await _partitions(bootstrap, topic):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


class Recorder:
    """A handler that fails as told and remembers every call (monotonic time, event id)."""

    def __init__(self, fail: Callable[[Envelope, int], BaseException | None] = lambda e, n: None) -> None:
        self.fail = fail
        self.calls: list[tuple[float, str]] = []
        self.handled: list[str] = []
        self.attempts: defaultdict[str, int] = defaultdict(int)

    async def __call__(self, event: Envelope) -> None:
        self.calls.append((time.monotonic(), event.id))
        self.attempts[event.id] += 1
        error = self.fail(event, self.attempts[event.id])
        if error is not None:
            raise error
        self.handled.append(event.id)

    def times(self, event_id: str) -> list[float]:
        return [t for t, i in self.calls if i == event_id]


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


async def test_a_handler_failing_twice_is_retried_after_1_and_2_seconds_and_handled_once(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap)
    await platform.create_topics()
    handler = Recorder(lambda e, n: RuntimeError(f"attempt {n}") if n <= 2 else None)
    async with (
        EventProducer.from_settings(platform.settings("orders")) as producer,
        running(platform.consumer("shipping", handler)),
    ):
        event = await producer.publish("order.created", {"orderId": "o-1"}, key="o-1")
        await wait_for(lambda: handler.handled, within=15)
        await asyncio.sleep(1.0)  # nothing more may come

    first, second = gaps(handler.times(event.id))
    assert 1.0 <= first <= 1.4, first
    assert 2.0 <= second <= 2.4, second
    assert handler.handled == [event.id] and len(handler.calls) == 3
    sub = platform.settings("shipping").subscriptions()[0]
    assert [await depth(kafka_bootstrap, t) for t in (*sub.retry_topics, sub.dlq)] == [1, 1, 0, 0]
    group = platform.settings("shipping").group_id
    assert [await committed(kafka_bootstrap, group, t) for t in (sub.topic, *sub.retry_topics[:2])] == [1, 1, 1]


async def test_a_handler_that_always_fails_dead_letters_after_exactly_3_retries(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap)
    await platform.create_topics()
    handler = Recorder(lambda e, n: RuntimeError(f"boom {n}"))
    trace = TraceContext.new()
    sub = platform.settings("shipping").subscriptions()[0]
    async with (
        EventProducer.from_settings(platform.settings("orders")) as producer,
        running(platform.consumer("shipping", handler)),
    ):
        event = await producer.publish("order.created", {"orderId": "o-2"}, key="o-2", trace=trace)
        await wait_for(lambda: depth(kafka_bootstrap, sub.dlq), within=20, interval=0.5)
        await wait_for(lambda: metric("keelson_dlq_depth", topic=sub.topic, service="shipping") == 1, within=5)

    assert gaps(handler.times(event.id)) == pytest.approx([1, 2, 4], abs=0.4)
    assert handler.handled == [] and len(handler.calls) == 4  # the first attempt and exactly 3 retries
    assert [await depth(kafka_bootstrap, t) for t in sub.retry_topics] == [1, 1, 1]
    (original,) = await read_topic(kafka_bootstrap, sub.topic)
    (dead,) = await read_topic(kafka_bootstrap, sub.dlq)
    headers = dict(dead.headers)
    assert headers[h.ORIGINAL_TOPIC] == sub.topic.encode()
    assert headers[h.ORIGINAL_PARTITION] == str(original.partition).encode()
    assert headers[h.ORIGINAL_OFFSET] == str(original.offset).encode()
    assert headers[h.ATTEMPTS] == b"4"
    assert headers[h.ERROR] == b"RuntimeError: boom 4"
    assert headers["traceparent"] == dict(original.headers)["traceparent"]
    assert headers["traceparent"].decode().split("-")[1] == trace.trace_id
    assert (dead.key, dead.value, dead.partition) == (original.key, original.value, original.partition)

    labels = {"topic": sub.topic, "service": "shipping"}
    assert metric("keelson_messages_produced_total", topic=sub.topic) == 1
    assert metric("keelson_messages_consumed_total", **labels) == 4  # the main topic and 3 retry topics
    assert metric("keelson_messages_retried_total", **labels) == 3
    assert metric("keelson_messages_dead_lettered_total", **labels, reason="exhausted") == 1
    assert metric("keelson_handler_duration_seconds_count", **labels, outcome="failed") == 4
    assert metric("keelson_consumer_lag", topic=sub.dlq, partition="0", service="shipping") is None  # never read
    assert metric("keelson_consumer_lag", topic=sub.topic, partition=str(original.partition), service="shipping") == 0


async def test_healthy_messages_behind_a_poison_one_keep_flowing(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap, partitions=1)  # one partition: all of them queue behind the poison
    await platform.create_topics()
    handler = Recorder(lambda e, n: RuntimeError("poison") if e.data.get("poison") else None)
    sub = platform.settings("shipping").subscriptions()[0]
    async with (
        EventProducer.from_settings(platform.settings("orders")) as producer,
        running(platform.consumer("shipping", handler)),
    ):
        poison = await producer.publish("order.created", {"poison": True}, key="p")
        healthy = [await producer.publish("order.created", {"n": i}, key=f"k{i}") for i in range(20)]
        await wait_for(lambda: len(handler.handled) == 20, within=10)
        await wait_for(lambda: depth(kafka_bootstrap, sub.dlq), within=20, interval=0.5)

    poison_times = handler.times(poison.id)
    last_healthy = max(t for t, i in handler.calls if i != poison.id)
    assert handler.handled == [e.id for e in healthy]  # in order, each once
    # All of them were handled before the poison's first retry, let alone its last.
    assert last_healthy < poison_times[1] < poison_times[-1]
    assert last_healthy - poison_times[0] < 0.5


async def test_killing_the_consumer_inside_a_retry_loses_nothing(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap)
    await platform.create_topics()
    stuck = asyncio.Event()

    async def first_fails_second_hangs(event: Envelope) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        if len(calls) == 2:
            stuck.set()
            await asyncio.Event().wait()  # killed in here, while handling the message from retry-1
        handled.append(event.id)

    calls: list[str] = []
    handled: list[str] = []
    sub = platform.settings("shipping").subscriptions()[0]
    async with EventProducer.from_settings(platform.settings("orders")) as producer:
        event = await producer.publish("order.created", {"orderId": "o-3"}, key="o-3")
        first = platform.consumer("shipping", first_fails_second_hangs)
        await first.start()
        task = asyncio.create_task(first.run())
        await asyncio.wait_for(stuck.wait(), 10)
        task.cancel()  # a crash: no commit, no goodbye
        with pytest.raises(asyncio.CancelledError):
            await task
        await first.stop()

        async with running(platform.consumer("shipping", first_fails_second_hangs)):
            await wait_for(lambda: handled, within=15)
            await asyncio.sleep(0.5)
    assert calls == [event.id] * 3 and handled == [event.id]
    assert await depth(kafka_bootstrap, sub.dlq) == 0


async def test_a_consumer_restarted_while_a_retry_waits_keeps_its_due_time(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap)
    await platform.create_topics()
    handler = Recorder(lambda e, n: RuntimeError(f"attempt {n}") if n <= 2 else None)
    async with EventProducer.from_settings(platform.settings("orders")) as producer:
        event = await producer.publish("order.created", {"orderId": "o-4"}, key="o-4")
        first = platform.consumer("shipping", handler)
        async with running(first) as task:
            await wait_for(lambda: len(handler.calls) == 2, within=10)  # now waiting 2 s on retry-2
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with running(platform.consumer("shipping", handler)):
            await wait_for(lambda: handler.handled, within=10)
            await asyncio.sleep(0.5)
    times = handler.times(event.id)
    assert len(times) == 3 and handler.handled == [event.id]
    assert 2.0 <= times[2] - times[1] <= 2.6  # the new consumer waited out the same due time, no longer


async def test_a_malformed_message_is_dead_lettered_at_once(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap)
    await platform.create_topics()
    handler = Recorder()
    sub = platform.settings("shipping").subscriptions()[0]
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **options(kafka_bootstrap))
    await raw.start()
    try:
        await raw.send_and_wait(sub.topic, b"{not json", key=b"x")
    finally:
        await raw.stop()
    async with running(platform.consumer("shipping", handler)):
        await wait_for(lambda: depth(kafka_bootstrap, sub.dlq), within=10, interval=0.3)
    (dead,) = await read_topic(kafka_bootstrap, sub.dlq)
    assert dead.value == b"{not json" and handler.calls == []
    assert dict(dead.headers)[h.ERROR].startswith(b"MalformedEvent: message is not JSON")
    assert dict(dead.headers)[h.ATTEMPTS] == b"1"


async def keelson(bootstrap: str, *args: str) -> tuple[int, str]:
    """The DLQ tool as an operator runs it: with the broker's admin (KEELSON_KAFKA_*), since a
    service's own user may neither read its DLQ nor list the others."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "keelson",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **security_of(bootstrap).env()},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_dlq_replay_brings_a_message_back_to_its_subscriber(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap, audit=True)
    await platform.create_topics()
    broken = True
    shipping = Recorder(lambda e, n: PermanentError("no such warehouse") if broken else None)
    audit = Recorder()
    sub = platform.settings("shipping").subscriptions()[0]
    b = ("--bootstrap-server", kafka_bootstrap)
    async with (
        EventProducer.from_settings(platform.settings("orders")) as producer,
        running(platform.consumer("shipping", shipping)),
        running(platform.consumer("audit", audit)),
    ):
        event = await producer.publish("order.created", {"orderId": "o-5"}, key="o-5")
        await wait_for(lambda: depth(kafka_bootstrap, sub.dlq), within=10, interval=0.3)
        assert shipping.handled == [] and len(shipping.calls) == 1  # PermanentError: no retries

        code, out = await keelson(kafka_bootstrap, "dlq", "list", *b, "--json")
        assert code == 0, out
        assert {"dlq": sub.dlq, "service": "shipping", "exists": True, "messages": 1} in json.loads(out)
        code, out = await keelson(kafka_bootstrap, "dlq", "show", sub.dlq, *b, "--json")
        assert code == 0, out
        (shown,) = json.loads(out)
        assert (shown["event_id"], shown["error"], shown["attempts"]) == (
            event.id,
            "PermanentError: no such warehouse",
            1,
        )
        position = f"{shown['partition']}:{shown['offset']}"

        code, out = await keelson(kafka_bootstrap, "dlq", "replay", sub.dlq, "--offset", position, "--dry-run", *b)
        assert code == 0 and f"would replay {position} -> {sub.topic} (for shipping)" in out, out
        assert await depth(kafka_bootstrap, sub.topic) == 1

        broken = False
        code, out = await keelson(kafka_bootstrap, "dlq", "replay", sub.dlq, "--offset", position, *b)
        assert code == 0 and f"replayed {position} -> {sub.topic}" in out, out
        await wait_for(lambda: shipping.handled, within=10)
        await asyncio.sleep(1.0)

    assert shipping.handled == [event.id]
    assert audit.handled == [event.id]  # once: the replay was addressed to shipping only
    replayed = (await read_topic(kafka_bootstrap, sub.topic))[-1]
    assert dict(replayed.headers)[h.REPLAY_FOR] == b"shipping"
    code, out = await keelson(kafka_bootstrap, "dlq", "replay", sub.dlq, "--offset", "9:9", *b)
    assert code == 1 and "no message at 9:9" in out


async def test_a_stop_asked_before_run_is_honoured_and_then_used_up(kafka_bootstrap: str) -> None:
    platform = Platform(kafka_bootstrap)
    await platform.create_topics()
    handler = Recorder(lambda e, n: None)
    consumer = platform.consumer("shipping", handler)
    await consumer.start()
    try:
        consumer.request_stop()  # e.g. the service is told to shut down while its consumer starts
        await asyncio.wait_for(consumer.run(), 10)
        async with EventProducer.from_settings(platform.settings("orders")) as producer:
            event = await producer.publish("order.created", {"orderId": "o-1"}, key="o-1")
        task = asyncio.create_task(consumer.run())  # the next run consumes
        await wait_for(lambda: handler.handled == [event.id], within=15)
        consumer.request_stop()
        await asyncio.wait_for(task, 10)
    finally:
        await consumer.stop()
