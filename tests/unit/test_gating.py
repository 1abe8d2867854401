"""External work (databases, topics) runs when its inputs change or when the resync is due, not
on every event of a child: a Deployment's status changing alone opens no PostgreSQL connection and
sends no Kafka admin request."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import REGISTRY

from keelson.controller.cache import DictCache
from keelson.controller.database_area import DatabasesArea
from keelson.controller.gating import GatedArea, database_children, topic_children
from keelson.controller.reconciler import Reconciler
from keelson.controller.topic_area import TopicsArea
from keelson.databases.admin import AdminConnection
from tests.unit.test_database_area import ADMIN_URI, FakeServer, FakeSession, _secret
from tests.unit.test_reconciler import FakeApi
from tests.unit.test_topics import FakeAdmin

NS = "ns"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """The reconciler with both real areas behind their gates, over fakes that count their use."""

    def __init__(self) -> None:
        self.cache = DictCache({"Secret": {}, "NetworkPolicy": {}, "Cluster": {}, "Database": {}})
        self.api = FakeApi(self.cache)
        self.server = FakeServer()
        self.connections = 0
        self.kafka = FakeAdmin({})
        self.kafka_sessions = 0
        self.clock = Clock()
        world = self

        @asynccontextmanager
        async def connector(_admin: AdminConnection) -> AsyncIterator[FakeSession]:
            world.connections += 1
            yield FakeSession(world.server)

        def admin(bootstrap: str, **_: Any) -> FakeAdmin:
            world.kafka_sessions += 1
            return self.kafka

        secrets = _Secrets()
        databases = DatabasesArea(secrets, self.cache, connector=connector)  # type: ignore[arg-type]
        topics = TopicsArea(self.cache, admin=admin)  # type: ignore[arg-type]
        self.areas = [
            GatedArea(databases, self.cache, watched=database_children, max_age=54, clock=self.clock),
            GatedArea(topics, self.cache, watched=topic_children, max_age=54, clock=self.clock),
        ]
        self.reconciler = Reconciler(self.api, self.cache, reference_image="img:1", areas=self.areas)  # type: ignore[arg-type]
        doc = copy.deepcopy(_example())
        doc["metadata"].update(namespace=NS, uid="p-uid", generation=1, resourceVersion="1", annotations={})
        self.platform: dict[str, Any] = doc

    async def reconcile(self) -> None:
        await self.reconciler.reconcile(self.platform)
        if self.api.status is not None:
            self.platform["status"] = self.api.status  # the watch delivers our status write

    def external_work(self) -> tuple[int, int]:
        return self.connections, self.kafka_sessions


class _Secrets:
    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        return _secret(uri=ADMIN_URI) if name == "pg-admin" else None


def _example() -> dict[str, Any]:
    from tests.cases.invalid_platforms import example

    return example()


def _passes(metric: str, area: str) -> float:
    return REGISTRY.get_sample_value(metric, {"area": area}) or 0.0


def _bump_status(w: World, name: str) -> None:
    """A Deployment's status changes (a pod became ready): a new resourceVersion in the cache."""
    store = w.cache.stores["Deployment"]
    live = copy.deepcopy(store[(NS, name)])  # type: ignore[index]
    live["metadata"]["resourceVersion"] = str(int(live["metadata"].get("resourceVersion", "1")) + 1)
    live["status"] = {**live.get("status", {}), "observedGeneration": 2}
    store[(NS, name)] = live  # type: ignore[index]


async def test_a_deployment_status_event_alone_runs_no_external_work() -> None:
    w = World()
    await w.reconcile()  # provisions the databases and creates the topics
    await w.reconcile()  # sees the Secrets it created in the cache: runs once more, then settles
    settled = w.external_work()
    assert settled[0] >= 1 and settled[1] >= 1
    ran = _passes("keelson_area_passes_total", "DatabasesReady")
    skipped = _passes("keelson_area_passes_skipped_total", "DatabasesReady")

    for _ in range(5):
        _bump_status(w, "orders")
        await w.reconcile()

    assert w.external_work() == settled  # no connection, no admin session
    assert _passes("keelson_area_passes_total", "DatabasesReady") == ran
    assert _passes("keelson_area_passes_skipped_total", "DatabasesReady") == skipped + 5
    # The reused results still say what they said: nothing is pruned, the conditions hold.
    status = w.platform["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["DatabasesReady"] == conditions["TopicsReady"] == "True"
    assert w.cache.get("Secret", NS, "shop-orders-db") is not None


async def test_inputs_and_the_resync_do_run_it() -> None:
    w = World()
    await w.reconcile()
    await w.reconcile()
    baseline = w.external_work()

    # A spec change (a new generation): both areas run.
    w.platform["spec"]["services"][0].setdefault("env", [])
    w.platform["metadata"]["generation"] = 2
    await w.reconcile()
    assert w.external_work() == (baseline[0] + 1, baseline[1] + 1)

    # A credentials Secret deleted by hand: the databases area runs (and restores it).
    after_spec = w.external_work()
    w.cache.stores["Secret"].pop((NS, "shop-orders-db"))  # type: ignore[attr-defined]
    await w.reconcile()
    assert w.external_work()[0] == after_spec[0] + 1
    assert w.cache.get("Secret", NS, "shop-orders-db") is not None
    await w.reconcile()  # the restored Secret's new resourceVersion
    settled = w.external_work()

    # The resync: the last run is older than max_age.
    w.clock.now += 55
    await w.reconcile()
    assert w.external_work() == (settled[0] + 1, settled[1] + 1)


async def test_a_failed_run_is_never_reused() -> None:
    w = World()
    w.kafka.down = True
    await w.reconcile()
    await w.reconcile()
    assert w.kafka_sessions == 2  # retried on the next pass, whatever woke it
