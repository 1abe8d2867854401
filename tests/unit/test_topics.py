from typing import Any

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform, MicroservicePlatformSpec
from keelson.controller.cache import DictCache
from keelson.controller.topic_area import TopicsArea
from keelson.kafka.admin import BrokerUnavailable, LiveTopic
from keelson.topics import dlq_topic, plan_topics, retry_topic, subscriptions, unpublished_subscriptions
from tests.cases.invalid_platforms import example
from tests.unit.render_helpers import context, objects


def _spec(mutate: Any = None) -> MicroservicePlatformSpec:
    doc = example()
    if mutate:
        mutate(doc["spec"])
    return MicroservicePlatform.from_object(doc).spec


def test_names_follow_the_rule() -> None:
    assert retry_topic("ecommerce.order.created", "notifications", 2) == "ecommerce.order.created.notifications.retry-2"
    assert dlq_topic("ecommerce.order.created", "notifications") == "ecommerce.order.created.notifications.dlq"


def test_example_plan() -> None:
    plan = {t.name: t for t in plan_topics(_spec())}
    mains = sorted(n for n, t in plan.items() if t.role == "main")
    assert mains == [
        "ecommerce.order.cancelled",
        "ecommerce.order.created",
        "ecommerce.order.delivered",
        "ecommerce.order.paid",
        "ecommerce.order.shipped",
        "ecommerce.payment.completed",
        "ecommerce.payment.failed",
        "ecommerce.user.deleted",
        "ecommerce.user.password-reset-requested",
        "ecommerce.user.registered",
        "ecommerce.user.verification-requested",
    ]
    # 14 subscriptions (orders 3, notifications 11), each with 3 retry topics and a DLQ
    assert len(subscriptions(_spec())) == 14
    assert sum(t.role == "retry" for t in plan.values()) == 42 and sum(t.role == "dlq" for t in plan.values()) == 14
    dlq = plan["ecommerce.payment.failed.orders.dlq"]
    assert (dlq.partitions, dlq.replication_factor, dlq.subscription) == (6, 3, "orders")
    assert plan["ecommerce.order.created.notifications.retry-1"].dlq == "ecommerce.order.created.notifications.dlq"


def test_retry_schedule_follows_resilience() -> None:
    def four(spec):
        spec["services"][4]["resilience"] = {"retry": {"maxRetries": 4}}

    sub = next(s for s in subscriptions(_spec(four)) if s.service == "notifications")
    assert sub.delays == (1, 2, 4, 8) and len(sub.retry_topics) == 4


def test_partitions_from_sizing_and_overrides() -> None:
    def sized(spec):
        del spec["kafka"]["partitions"]
        spec["kafka"]["topics"] = [{"name": "order.created", "partitions": 12, "config": {"retention.ms": "1000"}}]
        spec["kafka"]["config"] = {"min.insync.replicas": "2"}

    plan = {t.name: t for t in plan_topics(_spec(sized))}
    assert plan["ecommerce.user.registered"].partitions == 7  # sizing for 1M daily users
    created = plan["ecommerce.order.created"]
    assert created.partitions == 12 and created.config == {"min.insync.replicas": "2", "retention.ms": "1000"}
    assert plan["ecommerce.order.created.notifications.dlq"].partitions == 12


def test_unknown_topic_config_is_refused() -> None:
    def bad(spec):
        spec["kafka"]["config"] = {"retention.msec": "1"}

    with pytest.raises(ValueError, match="unknown topic config"):
        _spec(bad)


def test_foreign_and_unpublished_subscriptions() -> None:
    def foreign(spec):
        spec["services"][2]["subscribes"] = ["billing.invoice.issued", "shipment.sent"]

    spec = _spec(foreign)
    plan = {t.name: t for t in plan_topics(spec)}
    assert plan["billing.invoice.issued"].role == "external" and not plan["billing.invoice.issued"].managed
    assert unpublished_subscriptions(spec) == ["ecommerce.shipment.sent"]
    # Admission cannot afford to refuse it (a CEL rule over every subscription and publisher is
    # over the CRD's cost budget), so the platform converges: its own domain's topic is created.
    assert plan["ecommerce.shipment.sent"].role == "main" and plan["ecommerce.shipment.sent"].managed


def test_strimzi_topics_are_rendered_only_for_strimzi() -> None:
    assert not any(k[0] == "KafkaTopic" for k in objects(context()))

    def strimzi(spec):
        spec["kafka"] = {"provider": "strimzi", "strimziCluster": "my-cluster", "partitions": 6, "replicationFactor": 3}

    topics = [o for o in objects(context(strimzi)).values() if o["kind"] == "KafkaTopic"]
    assert len(topics) == 11 + 42 + 14
    created = next(t for t in topics if t["metadata"]["name"] == "ecommerce.order.created")
    assert created["apiVersion"] == "kafka.strimzi.io/v1"
    assert created["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
    assert created["spec"] == {"topicName": "ecommerce.order.created", "partitions": 6, "replicas": 3}


class FakeAdmin:
    """Records requests; an in-memory cluster for the convergence logic (the real broker is in e2e)."""

    def __init__(self, topics: dict[str, LiveTopic], *, down: bool = False) -> None:
        self.topics = topics
        self.down = down
        self.requests: list[tuple[str, Any]] = []
        self.writes = 0

    def __call__(self, bootstrap: str, **_: Any) -> "FakeAdmin":
        return self

    async def __aenter__(self) -> "FakeAdmin":
        if self.down:
            raise BrokerUnavailable("connection refused")
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def describe(self, names: Any) -> dict[str, LiveTopic]:
        return {n: self.topics[n] for n in names if n in self.topics}

    async def create(self, topics: list[tuple[str, int, int, dict[str, str]]]) -> None:
        if topics:
            self.requests.append(("create", [t[0] for t in topics]))
            for n, p, rf, c in topics:
                self.topics[n] = LiveTopic(n, p, rf, dict(c))

    async def grow(self, partitions: dict[str, int]) -> None:
        if partitions:
            self.requests.append(("grow", partitions))
            for n, p in partitions.items():
                t = self.topics[n]
                self.topics[n] = LiveTopic(n, p, t.replication_factor, t.config)

    async def configure(self, configs: dict[str, dict[str, str]]) -> None:
        if configs:
            self.requests.append(("configure", configs))

    async def delete(self, names: list[str]) -> None:
        if names:
            self.requests.append(("delete", names))
            for n in names:
                self.topics.pop(n, None)


def _platform(mutate: Any = None) -> tuple[dict[str, Any], MicroservicePlatform]:
    doc = example()
    doc["metadata"].update(namespace="ns", uid="u1")
    if mutate:
        mutate(doc["spec"])
    return doc, MicroservicePlatform.from_object(doc)


async def test_admin_creates_then_stays_quiet() -> None:
    fake = FakeAdmin({})
    area = TopicsArea(DictCache(), admin=fake)  # type: ignore[arg-type]
    doc, model = _platform()
    first = await area.reconcile(doc, model)
    assert first.condition.status == "True" and len(fake.requests) == 1 and fake.requests[0][0] == "create"
    assert len(fake.topics) == 67
    doc["status"] = first.status
    fake.requests.clear()
    second = await area.reconcile(doc, model)
    assert second.condition.reason == "TopicsReady" and fake.requests == []


async def test_admin_grows_but_never_shrinks() -> None:
    fake = FakeAdmin({})
    area = TopicsArea(DictCache(), admin=fake)  # type: ignore[arg-type]
    doc, model = _platform()
    await area.reconcile(doc, model)
    fake.requests.clear()

    def more(spec):
        spec["kafka"]["partitions"] = 8

    doc8, model8 = _platform(more)
    await area.reconcile(doc8, model8)
    assert fake.requests[0][0] == "grow" and set(fake.requests[0][1].values()) == {8}

    def fewer(spec):
        spec["kafka"]["partitions"] = 4

    doc4, model4 = _platform(fewer)
    result = await area.reconcile(doc4, model4)
    assert result.condition.reason == "PartitionDecreaseRefused"


async def test_removed_topics_are_retained_unless_delete() -> None:
    fake = FakeAdmin({})
    area = TopicsArea(DictCache(), admin=fake)  # type: ignore[arg-type]
    doc, model = _platform()
    doc["status"] = (await area.reconcile(doc, model)).status

    def drop_cancel(spec):
        spec["services"][2]["publishes"] = ["order.created", "order.paid"]
        spec["services"][4]["subscribes"] = [
            "user.registered",
            "order.created",
            "order.paid",
            "payment.completed",
            "payment.failed",
        ]

    doc2, model2 = _platform(drop_cancel)
    doc2["status"] = doc["status"]
    fake.requests.clear()
    result = await area.reconcile(doc2, model2)
    assert "ecommerce.order.cancelled" in fake.topics and fake.requests == []
    assert result.events[0].reason == "TopicsRetained"

    def delete_policy(spec):
        drop_cancel(spec)
        spec["kafka"]["deletionPolicy"] = "Delete"

    doc3, model3 = _platform(delete_policy)
    doc3["status"] = doc["status"]
    await area.reconcile(doc3, model3)
    assert "ecommerce.order.cancelled" not in fake.topics


async def test_broker_down_is_reported_and_retried() -> None:
    area = TopicsArea(DictCache(), admin=FakeAdmin({}, down=True))  # type: ignore[arg-type]
    doc, model = _platform()
    result = await area.reconcile(doc, model)
    assert (result.condition.status, result.condition.reason, result.retry) == ("False", "BrokerUnreachable", True)


def _no_events(spec: dict[str, Any]) -> None:
    spec["kafka"]["deletionPolicy"] = "Delete"
    for svc in spec["services"]:
        svc.pop("publishes", None)
        svc.pop("subscribes", None)


async def test_the_last_topics_go_when_every_event_is_removed_under_delete() -> None:
    fake = FakeAdmin({})
    area = TopicsArea(DictCache(), admin=fake)  # type: ignore[arg-type]
    doc, model = _platform()
    listed = (await area.reconcile(doc, model)).status
    assert len(fake.topics) == 67

    bare, bare_model = _platform(_no_events)
    bare["status"] = listed
    fake.down = True  # a pass that cannot reach the broker keeps them listed, to delete them later
    result = await area.reconcile(bare, bare_model)
    assert result.retry
    assert sorted(t["name"] for t in result.status["topics"]) == sorted(t["name"] for t in listed["topics"])
    fake.down = False
    result = await area.reconcile(bare, bare_model)
    assert fake.topics == {} and result.status == {}
    assert result.condition.reason == "NoTopics" and result.events[0].reason == "TopicsDeleted"
    # The status write of that pass lost a race (409): the next pass finds them gone, says nothing.
    assert (await area.reconcile(bare, bare_model)).events == []
    bare["status"] = result.status
    fake.requests.clear()
    assert (await area.reconcile(bare, bare_model)).condition.reason == "NoTopics" and fake.requests == []
