"""The platform's topics: names, roles and settings. Pure; shared by the operator (which creates
them) and the services' messaging library (which produces and consumes on them).

Naming, all by the `[domain].[entity].[action]` rule extended with segments of the same alphabet:

- a main topic per event: `<domain>.<entity>.<action>`, e.g. `ecommerce.order.created`;
- per subscription (topic x service), one retry topic per retry attempt and a dead-letter queue:
  `<topic>.<service>.retry-<n>`, e.g. `ecommerce.order.created.notifications.retry-1`, and
  `<topic>.<service>.dlq`, e.g. `ecommerce.order.created.notifications.dlq`.

A failing message leaves the main topic at once for `retry-1` (then `retry-2`, ...), whose consumer
waits out that attempt's delay before handling it; after the last retry it goes to the DLQ. So a
poison message never blocks the partition behind it; the price is that a retried message is
handled after messages that were behind it (ordering per key holds only for the first attempt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from keelson.api.v1alpha1 import MicroservicePlatformSpec, topic_name
from keelson.effective import effective_services, sizing

DEFAULT_PARTITIONS = 3
DEFAULT_REPLICATION_FACTOR = 3

Role = Literal["main", "retry", "dlq", "external"]


def retry_topic(topic: str, service: str, attempt: int) -> str:
    return f"{topic}.{service}.retry-{attempt}"


def dlq_topic(topic: str, service: str) -> str:
    return f"{topic}.{service}.dlq"


@dataclass(frozen=True)
class PlannedTopic:
    name: str
    role: Role
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)
    subscription: str | None = None  # the consuming service, for retry and DLQ topics
    source: str | None = None  # the main topic, for retry and DLQ topics
    dlq: str | None = None

    @property
    def managed(self) -> bool:
        """Whether Keelson creates it (another domain's topics are only expected to exist)."""
        return self.role != "external"


@dataclass(frozen=True)
class Subscription:
    topic: str
    service: str
    retry_topics: tuple[str, ...]
    delays: tuple[int, ...]
    dlq: str


def _partitions(spec: MicroservicePlatformSpec) -> int:
    if spec.kafka and spec.kafka.partitions:
        return spec.kafka.partitions
    sized = sizing(spec)
    return sized.partitions if sized else DEFAULT_PARTITIONS


def subscriptions(spec: MicroservicePlatformSpec) -> list[Subscription]:
    out = []
    for svc in effective_services(spec):
        res = svc.resilience
        # The schedule repeats its last delay when there are more retries than delays.
        delays = tuple(res.backoff_seconds[min(i, len(res.backoff_seconds) - 1)] for i in range(res.max_retries))
        for topic in svc.subscribes:
            out.append(
                Subscription(
                    topic=topic,
                    service=svc.name,
                    retry_topics=tuple(retry_topic(topic, svc.name, n + 1) for n in range(res.max_retries)),
                    delays=delays,
                    dlq=dlq_topic(topic, svc.name),
                )
            )
    return out


def plan_topics(spec: MicroservicePlatformSpec) -> list[PlannedTopic]:
    kafka = spec.kafka
    base_partitions = _partitions(spec)
    rf = kafka.replicationFactor if kafka and kafka.replicationFactor else DEFAULT_REPLICATION_FACTOR
    base_config = dict(kafka.config or {}) if kafka else {}
    overrides = {topic_name(spec.domain, t.name): t for t in (kafka.topics or [])} if kafka else {}

    def settings(name: str) -> tuple[int, dict[str, str]]:
        override = overrides.get(name)
        partitions = override.partitions if override and override.partitions else base_partitions
        return partitions, {**base_config, **(override.config or {} if override else {})}

    published = {topic_name(spec.domain, e) for s in spec.services for e in s.publishes or ()}
    subscribed = {topic_name(spec.domain, e) for s in spec.services for e in s.subscribes or ()}
    planned: list[PlannedTopic] = []
    for name in sorted(published | subscribed):
        partitions, config = settings(name)
        # A topic of another domain belongs to someone else: it is expected to exist, never
        # created. One of this domain is the platform's to create, published here or not (a
        # consumer may come before its producer, or another platform of the domain publishes it).
        own = name in published or name.split(".")[0] == spec.domain
        planned.append(PlannedTopic(name, "main" if own else "external", partitions, rf, config))
    mains = {t.name: t for t in planned}
    for sub in subscriptions(spec):
        main = mains[sub.topic]
        for retry in sub.retry_topics:
            planned.append(
                PlannedTopic(retry, "retry", main.partitions, rf, main.config, sub.service, sub.topic, sub.dlq)
            )
        planned.append(PlannedTopic(sub.dlq, "dlq", main.partitions, rf, main.config, sub.service, sub.topic, sub.dlq))
    return planned


def unpublished_subscriptions(spec: MicroservicePlatformSpec) -> list[str]:
    """Same-domain topics that a service subscribes to but no service publishes: created all the
    same, and named in TopicsReady's message, since it may be a typo (another domain's topics are
    expected to exist)."""
    published = {topic_name(spec.domain, e) for s in spec.services for e in s.publishes or ()}
    return sorted(
        {
            topic_name(spec.domain, e)
            for s in spec.services
            for e in s.subscribes or ()
            if topic_name(spec.domain, e) not in published and topic_name(spec.domain, e).split(".")[0] == spec.domain
        }
    )
