"""Shared by the reference services' end-to-end tests: settings as the operator renders them for
the e-commerce example (under a domain of each test's own, so topics never collide), the
example's topics created on the real broker exactly as the operator plans them, reading topics,
a local SMTP sink, and polling with deadlines (no test sleeps to wait)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from e2e.kafka_access import broker, options, provision_users, spec_fields
from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.devstack.ports import free_port
from keelson.kafkaclient import KafkaSecurity
from keelson.render import RenderContext, callers
from keelson.render.configmap import config_data
from keelson.topics import plan_topics
from keelson_services.settings import Settings
from tests.fakes.token_issuer import FakeIssuer

ISSUER = FakeIssuer()

EXAMPLE_SERVICES: list[dict[str, Any]] = [
    {"name": "gateway", "reference": "gateway", "calls": ["users", "orders", "notifications"]},
    {
        "name": "users",
        "reference": "users",
        "database": {"engine": "postgres"},
        "publishes": [
            "user.registered", "user.verification-requested", "user.password-reset-requested", "user.deleted",
        ],
        "expose": {"path": "/users"},
    },
    {
        "name": "orders",
        "reference": "orders",
        "database": {"engine": "postgres"},
        "calls": ["payments"],
        "publishes": ["order.created", "order.paid", "order.cancelled", "order.shipped", "order.delivered"],
        "subscribes": ["payment.completed", "payment.failed", "user.deleted"],
        "expose": {"path": "/orders"},
    },
    {
        "name": "payments",
        "reference": "payments",
        "database": {"engine": "postgres"},
        "publishes": ["payment.completed", "payment.failed"],
    },
    {
        "name": "notifications",
        "reference": "notifications",
        "database": {"engine": "postgres"},
        "subscribes": [
            "user.registered", "user.verification-requested", "user.password-reset-requested", "user.deleted",
            "order.created", "order.paid", "order.cancelled", "order.shipped", "order.delivered",
            "payment.completed", "payment.failed",
        ],
        "expose": {"path": "/notifications"},
    },
]  # fmt: skip


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The broker, secured as it is (`e2e.kafka_access.KafkaBroker`)."""
    return broker(request)


@dataclass
class Shop:
    """The e-commerce example's platform, its Kafka at `bootstrap` (or none), on a domain of its own."""

    bootstrap: str | None = None
    domain: str = field(default_factory=lambda: f"shop{uuid.uuid4().hex[:8]}")
    resilience: dict[str, Any] | None = None
    # Each service's own Kafka user (`create_topics` makes them), as the operator would.
    users: dict[str, KafkaSecurity] = field(default_factory=dict)
    # The platform's services: the example's unless a test needs another event or service.
    services: list[dict[str, Any]] = field(default_factory=lambda: EXAMPLE_SERVICES)

    @property
    def spec(self) -> MicroservicePlatformSpec:
        doc: dict[str, Any] = {"domain": self.domain, "gateway": {"service": "gateway"}, "services": self.services}
        if self.bootstrap:
            doc["kafka"] = {"provider": "admin", "bootstrapServers": self.bootstrap, "partitions": 2}
            doc["kafka"]["replicationFactor"] = 1
            doc["kafka"].update(spec_fields(self.bootstrap))
        if self.resilience:
            doc["defaults"] = {"resilience": self.resilience}
        return MicroservicePlatformSpec.model_validate(doc)

    def env(self, service: str) -> dict[str, str]:
        """The service's ConfigMap as the operator renders it, plus what its Secrets give it (its
        Kafka user, the CA), with its call tokens (the fake issuer stands in for the cluster's:
        there is no kubelet to mint them) in a private dir."""
        ctx = RenderContext(name="shop", namespace="shop", spec=self.spec, token_issuer=ISSUER.token_issuer())
        svc = ctx.service(service)
        env = config_data(ctx, svc)
        if service in self.users:
            env.update(self.users[service].env())
        if "KEELSON_CALL_TOKENS_DIR" in env:
            directory = Path(tempfile.gettempdir()) / "keelson-call-tokens" / self.domain / service
            audiences = {name: callers.audience(ctx, name) for name in callers.callees(ctx, svc)}
            env["KEELSON_CALL_TOKENS_DIR"] = str(ISSUER.write_tokens(directory, ctx.namespace, service, audiences))
        return env

    def caller_headers(self, caller: str, callee: str) -> dict[str, str]:
        """What `caller` proves itself with to `callee`: a test acting as the gateway sends these."""
        ctx = RenderContext(name="shop", namespace="shop", spec=self.spec)
        return {"Authorization": f"Bearer {ISSUER.mint(ctx.namespace, caller, callers.audience(ctx, callee))}"}

    def settings(self, service: str, **overrides: Any) -> Settings:
        settings = Settings.from_env(self.env(service))
        if overrides:
            settings = Settings(**(settings.__dict__ | overrides))
        return settings

    def topic(self, event: str) -> str:
        return f"{self.domain}.{event}"

    async def create_topics(self) -> None:
        """The topics, and each service's user and ACLs, as the operator plans them."""
        assert self.bootstrap
        # The domain as the namespace: a user of its own per test, never one with another's ACLs.
        self.users = await provision_users(self.bootstrap, self.spec, namespace=self.domain, platform="shop")
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **options(self.bootstrap))
        await admin.start()
        try:
            planned = [t for t in plan_topics(self.spec) if t.managed]
            await admin.create_topics([NewTopic(t.name, t.partitions, 1) for t in planned])
            names = {t.name for t in planned}

            async def ready() -> bool:
                if not names <= set(await admin.list_topics()):
                    return False
                described = await admin.describe_topics(sorted(names))
                return all(not t["error_code"] and all(p["leader"] >= 0 for p in t["partitions"]) for t in described)

            await wait_for(ready, within=30)
        finally:
            await admin.close()


async def wait_for(condition: Callable[[], Any], *, within: float, interval: float = 0.05) -> Any:
    """Poll `condition` (sync or async) until it is truthy; its value, or AssertionError at the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(interval)


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic now, in partition and offset order (no consumer group)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options(bootstrap))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        partitions = [p["partition"] for p in described["partitions"]]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **options(bootstrap)
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        end = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += [r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)]]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


class SmtpSink:
    """A local SMTP server (aiosmtpd) that keeps every message it accepts."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Message] = []
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def env(self) -> dict[str, str]:
        return {"KEELSON_SMTP_HOST": "127.0.0.1", "KEELSON_SMTP_PORT": str(self.port)}

    def to(self, email: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == email]

    async def link_token(self, email: str, page: str, *, within: float = 30) -> str:
        """The token of the latest link to `page` (`verify-email`, `reset-password`) emailed to `email`."""

        def found() -> str | None:
            for message in reversed(self.to(email)):
                match = LINK.search(text_of(message))
                if match and match["page"] == page:
                    return match["token"]
            return None

        token: str = await wait_for(found, within=within)
        return token


LINK = re.compile(r"/(?P<page>verify-email|reset-password)\?token=(?P<token>[A-Za-z0-9_-]+)")


def text_of(message: Message) -> str:
    """The plain-text part of an email."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            return payload.decode() if isinstance(payload, bytes) else str(payload)
    return ""


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def link_in_mailbox(mail_dir: Path, email: str) -> str | None:
    """The token of the first emailed link to `email` among the sink's files, if one arrived."""
    for path in sorted(mail_dir.glob("*.eml")):
        message = message_from_bytes(path.read_bytes())
        found = LINK.search(text_of(message)) if message["To"] == email else None
        if found:
            return found["token"]
    return None
