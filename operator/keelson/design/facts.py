"""Everything the document states, derived from the validated platform by the operator's own code.

Replicas, bounds, partitions, retry topics and DLQs come from `keelson.effective`,
`keelson.topics` and `keelson.sizing`, so the document cannot promise what the platform will not
get; the blueprint only adds the words (responsibilities, purposes, justifications).
"""

from __future__ import annotations

from dataclasses import dataclass

from keelson.api.v1alpha1 import MicroservicePlatform, topic_name
from keelson.databases.naming import secret_name
from keelson.design.blueprint import GATEWAY, Blueprint, ServiceBlueprint
from keelson.effective import EffectiveService, effective_services
from keelson.sizing import REPLICA_RPS, SizingResult, size_for
from keelson.topics import plan_topics, subscriptions

GATEWAY_BLUEPRINT = ServiceBlueprint(
    name=GATEWAY,
    responsibility="The only public entry: authenticates every request (access tokens from users), "
    "rate-limits per user, routes by path prefix to the services.",
    boundary="Owns no business data; forwards the public API unchanged and replaces any client-sent identity.",
    stateless="routing and token checks only; keys are cached from the users service's JWKS",
)


@dataclass(frozen=True)
class ServiceFact:
    blueprint: ServiceBlueprint
    effective: EffectiveService

    @property
    def name(self) -> str:
        return self.effective.name

    @property
    def kind(self) -> str:
        return f"reference `{self.effective.reference}`" if self.effective.reference else "custom image"


@dataclass(frozen=True)
class CallFact:
    caller: str
    callee: str
    purpose: str
    timeout_seconds: float
    breaker_failures: int
    breaker_open_seconds: int
    max_retries: int
    backoff_seconds: tuple[int, ...]


@dataclass(frozen=True)
class TopicFact:
    name: str
    role: str
    partitions: int
    replication_factor: int
    publishers: tuple[str, ...]
    subscribers: tuple[str, ...]
    purpose: str


@dataclass(frozen=True)
class SubscriptionFact:
    topic: str
    service: str
    retry_topics: tuple[str, ...]
    delays: tuple[int, ...]
    dlq: str
    handling: str


@dataclass(frozen=True)
class DatabaseFact:
    service: str
    engine: str
    stores: str
    justification: str
    secret: str


@dataclass(frozen=True)
class DesignFacts:
    sizing: SizingResult
    replica_rps: float
    services: tuple[ServiceFact, ...]
    calls: tuple[CallFact, ...]
    topics: tuple[TopicFact, ...]
    subscriptions: tuple[SubscriptionFact, ...]
    databases: tuple[DatabaseFact, ...]

    @property
    def peak_capacity_rps(self) -> float:
        """What one service's replicas serve at the HPA's upper bound."""
        return min(s.effective.autoscaling.max_replicas for s in self.services) * self.replica_rps


def _blueprints(blueprint: Blueprint) -> dict[str, ServiceBlueprint]:
    return {GATEWAY: GATEWAY_BLUEPRINT, **{s.name: s for s in blueprint.services}}


def _purpose(texts: dict[str, ServiceBlueprint], domain: str, topic: str) -> str:
    return next(
        (text for s in texts.values() for event, text in s.publishes.items() if topic_name(domain, event) == topic), ""
    )


def _database(platform: str, svc: ServiceFact) -> DatabaseFact:
    choice = svc.blueprint.database
    assert choice is not None, f"{svc.name}: the platform declares a database the blueprint does not explain"
    return DatabaseFact(
        service=svc.name,
        engine=choice.engine,
        stores=choice.stores,
        justification=choice.justification,
        secret=secret_name(platform, svc.name),
    )


def design_facts(blueprint: Blueprint, platform: MicroservicePlatform) -> DesignFacts:
    spec = platform.spec
    assert spec.dailyUsers is not None, "a design is always sized"
    texts = _blueprints(blueprint)
    services = tuple(ServiceFact(texts[e.name], e) for e in effective_services(spec))
    calls = tuple(
        CallFact(
            caller=s.name,
            callee=callee,
            purpose=texts[s.name].calls.get(
                callee, f"forwards the public requests under /api/v1{texts[callee].expose}"
            ),
            timeout_seconds=s.effective.resilience.timeout_seconds,
            breaker_failures=s.effective.resilience.breaker_failures,
            breaker_open_seconds=s.effective.resilience.breaker_open_seconds,
            max_retries=s.effective.resilience.max_retries,
            backoff_seconds=s.effective.resilience.backoff_seconds,
        )
        for s in services
        for callee in s.effective.calls
    )
    topics = tuple(
        TopicFact(
            name=t.name,
            role=t.role,
            partitions=t.partitions,
            replication_factor=t.replication_factor,
            publishers=tuple(s.name for s in services if t.name in s.effective.publishes),
            subscribers=tuple(s.name for s in services if t.name in s.effective.subscribes),
            purpose=_purpose(texts, spec.domain, t.name),
        )
        for t in plan_topics(spec)
        if t.role in ("main", "external")
    )
    subs = tuple(
        SubscriptionFact(
            topic=sub.topic,
            service=sub.service,
            retry_topics=sub.retry_topics,
            delays=sub.delays,
            dlq=sub.dlq,
            handling=next(
                text
                for event, text in texts[sub.service].subscribes.items()
                if topic_name(spec.domain, event) == sub.topic
            ),
        )
        for sub in subscriptions(spec)
    )
    databases = tuple(_database(platform.metadata.name, s) for s in services if s.effective.has_database)
    return DesignFacts(
        sizing=size_for(spec.dailyUsers),
        replica_rps=REPLICA_RPS,
        services=services,
        calls=calls,
        topics=topics,
        subscriptions=subs,
        databases=databases,
    )
