"""What `keelson status` shows about a platform, gathered from its object, children and Events. Pure.

The spec says what should exist (services, subscriptions and their DLQs, databases); the status the
operator wrote and the live Deployments and HPAs say how it is. Nothing here guesses: a platform
whose status the operator has not written yet is shown as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.topics import subscriptions

MAX_EVENTS = 10


@dataclass(frozen=True)
class ServiceRow:
    name: str
    ready: int
    desired: int
    hpa_min: int | None  # None: no HPA (autoscaling off, or not created yet)
    hpa_max: int | None
    available: bool


@dataclass(frozen=True)
class DlqRow:
    consumer: str
    dlq: str
    exists: bool | None
    depth: int | None  # messages in the DLQ, when the broker was asked


@dataclass(frozen=True)
class TopicRow:
    name: str
    role: str
    partitions: int | None
    exists: bool | None
    dlqs: tuple[DlqRow, ...]


@dataclass(frozen=True)
class DatabaseRow:
    service: str
    provider: str
    database: str | None
    ready: bool
    message: str | None


@dataclass(frozen=True)
class AttachedRow:
    """A PlatformService that names the platform (docs/tenancy.md)."""

    namespace: str
    name: str
    service: str | None
    accepted: bool
    reason: str


@dataclass(frozen=True)
class ConditionRow:
    type: str
    status: str
    reason: str
    message: str
    since: str


@dataclass(frozen=True)
class EventRow:
    type: str
    reason: str
    message: str
    time: str
    count: int


@dataclass(frozen=True)
class PlatformView:
    name: str
    namespace: str
    reported: bool  # whether the operator has written a status for the current generation
    generation: int
    observed_generation: int | None
    ready: str  # True, False or Unknown
    ready_reason: str
    daily_users: int | None
    services: tuple[ServiceRow, ...]
    topics: tuple[TopicRow, ...]
    databases: tuple[DatabaseRow, ...]
    conditions: tuple[ConditionRow, ...]
    events: tuple[EventRow, ...] = field(default=())
    attached: tuple[AttachedRow, ...] = field(default=())
    dlq_depth_source: str = ""  # where the DLQ depths come from, or why there are none

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dlq_partitions(obj: dict[str, Any]) -> dict[str, int]:
    """The platform's DLQs with their partitions, as the operator reported them."""
    topics = (obj.get("status") or {}).get("topics") or []
    return {t["name"]: int(t["partitions"]) for t in topics if t.get("role") == "dlq" and t.get("exists")}


def _by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


def _service_row(name: str, deployment: dict[str, Any] | None, hpa: dict[str, Any] | None) -> ServiceRow:
    spec = (deployment or {}).get("spec", {})
    status = (deployment or {}).get("status", {})
    desired = int(spec.get("replicas", 0)) if deployment else 0
    ready = int(status.get("readyReplicas", 0))
    hpa_spec = (hpa or {}).get("spec", {})
    return ServiceRow(
        name=name,
        ready=ready,
        desired=desired,
        hpa_min=hpa_spec.get("minReplicas", 1) if hpa else None,
        hpa_max=hpa_spec.get("maxReplicas") if hpa else None,
        available=deployment is not None and desired > 0 and ready >= desired,
    )


def _topics(platform: MicroservicePlatform, status: dict[str, Any], depths: dict[str, int]) -> tuple[TopicRow, ...]:
    reported = {t["name"]: t for t in status.get("topics") or []}
    dlqs: dict[str, list[DlqRow]] = {}
    for sub in subscriptions(platform.spec):
        dlq = reported.get(sub.dlq, {})
        dlqs.setdefault(sub.topic, []).append(DlqRow(sub.service, sub.dlq, dlq.get("exists"), depths.get(sub.dlq)))
    rows = []
    for name, topic in sorted(reported.items()):
        if topic.get("role") in ("main", "external"):
            rows.append(
                TopicRow(name, topic["role"], topic.get("partitions"), topic.get("exists"), tuple(dlqs.get(name, ())))
            )
    return tuple(rows)


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp", ""))


def platform_view(
    obj: dict[str, Any],
    *,
    deployments: list[dict[str, Any]],
    hpas: list[dict[str, Any]],
    events: list[dict[str, Any]],
    dlq_depths: dict[str, int] | None = None,
    dlq_depth_source: str = "",
) -> PlatformView:
    platform = MicroservicePlatform.from_object(obj)
    status = obj.get("status") or {}
    generation = int(obj["metadata"].get("generation", 0))
    observed = status.get("observedGeneration")
    conditions = tuple(
        ConditionRow(c["type"], c["status"], c.get("reason", ""), c.get("message", ""), c.get("lastTransitionTime", ""))
        for c in status.get("conditions") or []
    )
    ready = next((c for c in conditions if c.type == "Ready"), None)
    by_deployment, by_hpa = _by_name(deployments), _by_name(hpas)
    # By time, then name: events of the same second keep one order from run to run.
    recent = sorted(events, key=lambda e: (_event_time(e), e["metadata"].get("name", "")))[-MAX_EVENTS:]
    return PlatformView(
        name=platform.metadata.name,
        namespace=platform.metadata.namespace,
        reported=observed is not None and observed >= generation,
        generation=generation,
        observed_generation=observed,
        ready=ready.status if ready else "Unknown",
        ready_reason=ready.reason if ready else "NotReported",
        daily_users=platform.spec.dailyUsers,
        services=tuple(
            _service_row(s.name, by_deployment.get(s.name), by_hpa.get(s.name)) for s in platform.spec.services
        ),
        topics=_topics(platform, status, dlq_depths or {}),
        databases=tuple(
            DatabaseRow(d["service"], d["provider"], d.get("database"), bool(d.get("ready")), d.get("message"))
            for d in status.get("databases") or []
        ),
        conditions=conditions,
        events=tuple(
            EventRow(
                e.get("type", ""), e.get("reason", ""), e.get("message", ""), _event_time(e), int(e.get("count") or 1)
            )
            for e in recent
        ),
        attached=tuple(
            AttachedRow(a["namespace"], a["name"], a.get("service"), bool(a.get("accepted")), a.get("reason", ""))
            for a in status.get("attached") or []
        ),
        dlq_depth_source=dlq_depth_source,
    )


@dataclass(frozen=True)
class SummaryRow:
    namespace: str
    name: str
    ready: str
    reason: str
    services: str  # ready/all, as the operator reported it
    daily_users: int | None


def summary_row(obj: dict[str, Any]) -> SummaryRow:
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return SummaryRow(
        namespace=obj["metadata"].get("namespace", ""),
        name=obj["metadata"]["name"],
        ready=ready["status"] if ready else "Unknown",
        reason=ready.get("reason", "") if ready else "NotReported",
        services=status.get("readyServices") or "-",
        daily_users=(obj.get("spec") or {}).get("dailyUsers"),
    )
