"""The Kafka area: the platform's topics, retry topics and DLQs (condition TopicsReady).

provider admin  : create, grow and configure topics through the Admin API, idempotently (it
                  describes first and sends a request only for a difference);
provider strimzi: the KafkaTopic objects are rendered children; this area reports on them;
provider none   : topics are only listed in status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from keelson.api.v1alpha1 import MicroservicePlatform, MicroservicePlatformSpec
from keelson.controller import metrics
from keelson.controller.areas import AreaResult, PlatformEvent
from keelson.controller.cache import ChildCache
from keelson.controller.conditions import ConditionState
from keelson.controller.database_pass import SecretReader
from keelson.controller.kafka_access import KafkaAccess, KafkaAccessProblem
from keelson.kafka.admin import AdminRequestFailed, BrokerUnavailable, KafkaAdmin, LiveTopic
from keelson.topics import PlannedTopic, plan_topics, unpublished_subscriptions

log = logging.getLogger("keelson.topics")

TOPICS_READY = "TopicsReady"


def _provider(spec: MicroservicePlatformSpec) -> str:
    return (spec.kafka.provider if spec.kafka else None) or "none"


_NO_TOPICS = ConditionState(TOPICS_READY, "True", "NoTopics", "the platform declares no events")


def _previous(platform: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The topics the last status listed, by name: how a topic no longer planned is remembered."""
    return {t["name"]: t for t in (platform.get("status") or {}).get("topics", []) or []}


def _dropped(platform: dict[str, Any], plan: list[PlannedTopic]) -> list[str]:
    """Topics listed before and planned no more; external ones were never ours."""
    wanted = {t.name for t in plan}
    return sorted(n for n, t in _previous(platform).items() if n not in wanted and t.get("role") != "external")


def _listed(entries: list[dict[str, Any]]) -> dict[str, Any]:
    # No topics, no field: the status is replaced as a whole, so the key goes with the last topic.
    return {"topics": entries} if entries else {}


def _entry(topic: PlannedTopic, exists: bool | None, message: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": topic.name,
        "role": topic.role,
        "partitions": topic.partitions,
        "replicationFactor": topic.replication_factor,
    }
    if exists is not None:
        entry["exists"] = exists
    if topic.dlq:
        entry["dlq"] = topic.dlq
    if topic.subscription:
        entry["subscription"] = topic.subscription
    if message:
        entry["message"] = message
    return entry


class TopicsArea:
    condition_type = TOPICS_READY
    status_key = "topics"

    def __init__(
        self, cache: ChildCache, admin: Callable[..., KafkaAdmin] = KafkaAdmin, *, client: SecretReader | None = None
    ) -> None:
        self.cache = cache
        self.admin = admin
        # Reads the CA and admin Secrets that spec.kafka.tls and .authentication name.
        self.access = KafkaAccess(client)

    def needs_cleanup(self, model: MicroservicePlatform) -> bool:
        kafka = model.spec.kafka
        return bool(kafka and _provider(model.spec) == "admin" and kafka.deletionPolicy == "Delete")

    async def reconcile(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        spec = model.spec
        plan = plan_topics(spec)
        provider = _provider(spec)
        if provider == "admin" and (plan or _dropped(platform, plan)):
            # Also with no event left: the topics of the last one are deleted (or reported kept).
            result = await self._reconcile_admin(platform, spec, plan)
        elif not plan:
            return AreaResult(_NO_TOPICS)
        elif provider == "strimzi":
            result = self._report_strimzi(platform, plan)
        else:
            result = AreaResult(
                ConditionState(
                    TOPICS_READY, "True", "NotManaged", f"{len(plan)} topics listed; provider none creates no topics"
                ),
                status={"topics": [_entry(t, None) for t in plan]},
            )
        unpublished = unpublished_subscriptions(spec)
        if unpublished and result.condition.status == "True":
            # Not a failure: the topics exist and the platform works; a consumer may come first.
            cond = result.condition
            result.condition = ConditionState(
                cond.type,
                cond.status,
                cond.reason,
                f"{cond.message}; subscribed but published by no service of this platform (created all the "
                f"same): {', '.join(unpublished)}",
            )
        return result

    def _report_strimzi(self, platform: dict[str, Any], plan: list[PlannedTopic]) -> AreaResult:
        namespace = platform["metadata"]["namespace"]
        entries, missing, failing = [], [], []
        for topic in plan:
            if not topic.managed:
                entries.append(_entry(topic, None))
                continue
            live = self.cache.get("KafkaTopic", namespace, topic.name)
            message = None
            for cond in (live or {}).get("status", {}).get("conditions", []) or []:
                if cond.get("type") == "Ready" and cond.get("status") == "False":
                    message = cond.get("message") or cond.get("reason")
                    failing.append(f"{topic.name}: {message}")
            if live is None:
                missing.append(topic.name)
            entries.append(_entry(topic, live is not None, message))
        if failing:
            cond = ConditionState(TOPICS_READY, "False", "KafkaTopicNotReady", "; ".join(failing[:3]))
        elif missing:
            cond = ConditionState(TOPICS_READY, "False", "KafkaTopicsPending", f"{len(missing)} KafkaTopic(s) pending")
        else:
            cond = ConditionState(TOPICS_READY, "True", "KafkaTopicsApplied", f"{len(entries)} KafkaTopic objects")
        return AreaResult(cond, status={"topics": entries})

    async def _reconcile_admin(
        self, platform: dict[str, Any], spec: MicroservicePlatformSpec, plan: list[PlannedTopic]
    ) -> AreaResult:
        kafka = spec.kafka
        assert kafka is not None
        previous = _previous(platform)
        wanted = {t.name for t in plan}
        dropped = _dropped(platform, plan)
        # When the broker cannot be asked, the dropped topics stay listed: the next pass deletes
        # (or reports) them. Taken off the list now, they would be forgotten for good.
        unfinished = _listed([_entry(t, None) for t in plan] + [previous[n] for n in dropped])
        if not kafka.bootstrapServers:
            return AreaResult(
                ConditionState(TOPICS_READY, "False", "NoBootstrapServers", "spec.kafka.bootstrapServers is not set"),
                status=unfinished,
            )
        events: list[PlatformEvent] = []
        try:
            security = await self.access.security(platform["metadata"]["namespace"], kafka)
        except KafkaAccessProblem as exc:
            return AreaResult(
                ConditionState(TOPICS_READY, "False", exc.reason, str(exc)),
                status=unfinished,
                retry=True,
                errors=[f"kafka: {exc}"],
            )
        try:
            async with self.admin(kafka.bootstrapServers, security=security) as admin:
                live = await admin.describe(wanted | set(dropped))
                problems = await self._converge(admin, plan, live)
                if dropped and kafka.deletionPolicy == "Delete":
                    gone = [n for n in dropped if n in live]
                    await admin.delete(gone)
                    if gone:  # none when a pass whose status write lost a race deleted them: no second Event
                        events.append(PlatformEvent("Normal", "TopicsDeleted", f"deleted: {', '.join(gone)}"))
                elif dropped:
                    events.append(
                        PlatformEvent(
                            "Normal",
                            "TopicsRetained",
                            f"no longer declared, kept with their data (deletionPolicy Retain): {', '.join(dropped)}",
                        )
                    )
                metrics.KAFKA_ADMIN_WRITES.inc(admin.writes)
        except BrokerUnavailable as exc:
            return AreaResult(
                ConditionState(TOPICS_READY, "False", "BrokerUnreachable", f"{kafka.bootstrapServers}: {exc}"),
                status=unfinished,
                retry=True,
                errors=[f"kafka: {exc}"],
            )
        except AdminRequestFailed as exc:
            return AreaResult(
                ConditionState(TOPICS_READY, "False", "AdminRequestFailed", str(exc)[:1024]),
                status=unfinished,
                retry=True,
                errors=[f"kafka: {exc}"],
            )
        entries = []
        for topic in plan:
            exists = topic.name in live or topic.managed  # managed ones exist now (created if missing)
            entries.append(_entry(topic, exists, problems.get(topic.name)))
        missing_external = [t.name for t in plan if not t.managed and t.name not in live]
        if not plan:
            cond = _NO_TOPICS
        elif problems:
            first = next(iter(problems.items()))
            reason = "PartitionDecreaseRefused" if "decrease" in first[1] else "TopicMismatch"
            cond = ConditionState(TOPICS_READY, "False", reason, f"{first[0]}: {first[1]}")
        elif missing_external:
            cond = ConditionState(
                TOPICS_READY, "False", "ExternalTopicMissing", f"expected to exist: {', '.join(missing_external)}"
            )
        else:
            cond = ConditionState(TOPICS_READY, "True", "TopicsReady", f"{len(plan)} topics in place")
        return AreaResult(cond, status=_listed(entries), events=events)

    async def _converge(
        self, admin: KafkaAdmin, plan: list[PlannedTopic], live: dict[str, LiveTopic]
    ) -> dict[str, str]:
        """Create, grow and configure what differs; return what cannot be fixed, per topic."""
        problems: dict[str, str] = {}
        create, grow, configure = [], {}, {}
        for topic in plan:
            if not topic.managed:
                continue
            current = live.get(topic.name)
            if current is None:
                create.append((topic.name, topic.partitions, topic.replication_factor, topic.config))
                continue
            if current.partitions < topic.partitions:
                grow[topic.name] = topic.partitions
            elif current.partitions > topic.partitions:
                problems[topic.name] = (
                    f"partition decrease refused: has {current.partitions}, spec asks {topic.partitions}"
                )
            if current.replication_factor != topic.replication_factor:
                problems.setdefault(
                    topic.name,
                    f"replication factor is {current.replication_factor}, spec asks {topic.replication_factor} "
                    "(changing it needs a partition reassignment)",
                )
            if any(current.config.get(k) != v for k, v in topic.config.items()):
                # AlterConfigs replaces the topic's whole dynamic config: keep what others set.
                configure[topic.name] = {**current.config, **topic.config}
        await admin.create(create)
        await admin.grow(grow)
        await admin.configure(configure)
        if create or grow or configure:
            log.info("kafka: created %d, grew %d, configured %d topics", len(create), len(grow), len(configure))
        return problems

    async def cleanup(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        kafka = model.spec.kafka
        assert kafka is not None and kafka.bootstrapServers
        names = [t.name for t in plan_topics(model.spec) if t.managed]
        try:
            security = await self.access.security(platform["metadata"]["namespace"], kafka, deleting=True)
            async with self.admin(kafka.bootstrapServers, security=security) as admin:
                live = await admin.describe(names)
                await admin.delete([n for n in names if n in live])
        except (KafkaAccessProblem, BrokerUnavailable, AdminRequestFailed) as exc:
            return AreaResult(
                ConditionState(TOPICS_READY, "False", "CleanupFailed", f"cannot delete topics: {exc}"),
                retry=True,
                errors=[f"kafka cleanup: {exc}"],
                done=False,
            )
        return AreaResult(ConditionState(TOPICS_READY, "True", "TopicsDeleted", f"deleted {len(names)} topics"))
