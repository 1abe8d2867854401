"""Kafka topics from the platform spec, against a real broker and a real control plane."""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import signal
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from e2e.conftest import established
from e2e.kube import Kube, eventually, operator_metric, reconcile_count, third_party_crds
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.devstack import processes
from keelson.devstack.stack import LocalStack
from keelson.topics import plan_topics
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

STRIMZI_CRD = "strimzi-kafkatopic.yaml"
_domains = itertools.count()


def _platform(stack: LocalStack, **kafka: Any) -> dict[str, Any]:
    doc = workloads_example()  # no databases: these tests are about topics alone
    # A domain of its own per test: the broker is shared, topic names are not.
    doc["spec"]["domain"] = f"shop{os.getpid() % 1000}x{next(_domains)}"
    doc["spec"]["kafka"] = {
        "provider": "admin",
        **stack.kafka_settings(),  # TLS and SCRAM, with the Secrets the namespace fixture applies
        "partitions": 3,
        "replicationFactor": 1,
        **kafka,
    }
    return doc


async def _broker_topics(stack: LocalStack, prefix: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, **stack.kafka_security.options())
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(prefix + ".")]
        described = await admin.describe_topics(names) if names else []
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


def _planned(doc: dict[str, Any]) -> dict[str, int]:
    spec = MicroservicePlatform.from_object(doc).spec
    return {t.name: t.partitions for t in plan_topics(spec) if t.managed}


def _condition(kube: Kube, namespace: str, ctype: str) -> dict[str, Any]:
    return kube.condition("shop", namespace, ctype) or {}


def _admin_writes(port: int) -> float:
    return operator_metric(port, "keelson_kafka_admin_writes_total")


async def test_topics_created_once_added_and_retained(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = _platform(stack)
    domain = doc["spec"]["domain"]
    kube.apply(namespace, doc)
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=90, what="Ready")
    assert await _broker_topics(stack, domain) == _planned(doc)
    status = kube.get("msp", "shop", namespace)["status"]  # type: ignore[index]
    assert all(t["exists"] for t in status["topics"] if t["role"] != "external")
    assert _condition(kube, namespace, "TopicsReady")["reason"] == "TopicsReady"

    # A reconcile of the unchanged platform sends no admin request.
    port = stack.ports["operator-metrics"]
    writes, passes = _admin_writes(port), reconcile_count(port)
    kube.run("annotate", "msp", "shop", "-n", namespace, "example.com/poke=1")
    eventually(lambda: reconcile_count(port) > passes, timeout=30, what="a reconcile")
    assert _admin_writes(port) == writes

    # Adding an event creates its topic; removing one keeps it (deletionPolicy Retain).
    changed = copy.deepcopy(doc)
    orders = next(s for s in changed["spec"]["services"] if s["name"] == "orders")
    orders["publishes"] = [e for e in orders["publishes"] if e != "order.cancelled"] + ["order.returned"]
    notifications = next(s for s in changed["spec"]["services"] if s["name"] == "notifications")
    notifications["subscribes"] = [e for e in notifications["subscribes"] if e != "order.cancelled"]
    kube.apply(namespace, changed)
    eventually(
        lambda: (
            f"{domain}.order.returned" in {t["name"] for t in kube.get("msp", "shop", namespace)["status"]["topics"]}
        ),  # type: ignore[index]
        timeout=30,
        what="status lists the new topic",
    )
    live = await _broker_topics(stack, domain)
    assert f"{domain}.order.returned" in live
    assert f"{domain}.order.cancelled" in live and f"{domain}.order.cancelled.notifications.dlq" in live
    events = kube.list("events", namespace)
    assert any(e["reason"] == "TopicsRetained" and "order.cancelled" in e["message"] for e in events)


async def test_partitions_grow_and_decrease_is_refused(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = _platform(stack)
    domain = doc["spec"]["domain"]
    kube.apply(namespace, doc)
    eventually(lambda: _condition(kube, namespace, "TopicsReady").get("status") == "True", timeout=90, what="ready")
    doc["spec"]["kafka"]["partitions"] = 4
    kube.apply(namespace, doc)
    eventually(
        lambda: (
            _condition(kube, namespace, "TopicsReady").get("status") == "True"
            and kube.get("msp", "shop", namespace)["status"]["observedGeneration"] == 2
        ),  # type: ignore[index]
        timeout=60,
        what="grown",
    )
    assert set((await _broker_topics(stack, domain)).values()) == {4}
    doc["spec"]["kafka"]["partitions"] = 2
    proc = kube.apply(namespace, doc, check=False)
    assert proc.returncode != 0 and "partitions can only grow" in proc.stderr


def test_broker_down_then_back(kube: Kube, namespace: str, stack: LocalStack) -> None:
    """A broker that stops answering (frozen with SIGSTOP: it holds its connections and answers
    nothing, which is what a hung or partitioned broker does) is reported, and the platform
    recovers by itself when it answers again. Frozen rather than restarted: the suite's broker
    keeps its state, and a restart of the SCRAM-secured broker after long use is a known defect of
    the dev stack (docs/testing.md)."""
    doc = _platform(stack)
    kube.apply(namespace, doc)
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=90, what="Ready")
    assert processes.kill(stack.state_dir, "kafka", signal.SIGSTOP)
    try:
        kube.run("annotate", "msp", "shop", "-n", namespace, "example.com/poke=1")  # reconcile now, not at resync
        eventually(
            lambda: _condition(kube, namespace, "Ready").get("reason") == "BrokerUnreachable",
            timeout=120,
            what="Ready=False BrokerUnreachable",
        )
        assert _condition(kube, namespace, "WorkloadsReady")["status"] == "True"  # the rest still reconciles
    finally:
        processes.kill(stack.state_dir, "kafka", signal.SIGCONT)
    # Recovers by itself: the failed reconcile is retried with backoff.
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=120, what="recovered")


async def test_delete_policy_deletes_topics_with_the_platform(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = _platform(stack, deletionPolicy="Delete")
    domain = doc["spec"]["domain"]
    kube.apply(namespace, doc)
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=90, what="Ready")
    assert "keelson.dev/cleanup" in kube.get("msp", "shop", namespace)["metadata"]["finalizers"]  # type: ignore[index]
    kube.run("delete", "msp", "shop", "-n", namespace, "--timeout=60s")
    assert await _broker_topics(stack, domain) == {}


def test_finalizer_never_wedges_when_the_broker_is_gone(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = _platform(stack, deletionPolicy="Delete", bootstrapServers="127.0.0.1:1")  # nothing listens there
    kube.apply(namespace, doc)
    eventually(
        lambda: (
            "keelson.dev/cleanup"
            in (kube.get("msp", "shop", namespace) or {}).get("metadata", {}).get("finalizers", [])
        ),
        timeout=30,
        what="finalizer added",
    )
    kube.run("delete", "msp", "shop", "-n", namespace, "--wait=false")
    eventually(
        lambda: _condition(kube, namespace, "Ready").get("reason") == "CleanupFailed",
        timeout=60,
        what="cleanup failure reported",
    )
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/release-finalizer=true")
    eventually(lambda: kube.get("msp", "shop", namespace) is None, timeout=30, what="released")


def test_strimzi_topics_are_accepted_by_the_real_crd(kube: Kube, namespace: str, stack: LocalStack) -> None:
    kube.run("apply", "--server-side", "-f", str(third_party_crds() / STRIMZI_CRD))
    eventually(lambda: established(kube, "kafkatopics.kafka.strimzi.io"), timeout=60, what="Strimzi CRD established")
    doc = _platform(stack)
    doc["spec"]["kafka"] = {
        "provider": "strimzi",
        "strimziCluster": "my-cluster",
        "partitions": 6,
        "replicationFactor": 3,
    }
    kube.apply(namespace, doc)
    expected = _planned(doc)
    eventually(lambda: len(kube.list("kafkatopics", namespace)) == len(expected), timeout=60, what="KafkaTopics")
    topics = {t["spec"]["topicName"]: t for t in kube.list("kafkatopics", namespace)}
    assert {n: t["spec"]["partitions"] for n, t in topics.items()} == expected
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster" for t in topics.values())
    assert all(t["metadata"]["ownerReferences"][0]["kind"] == "MicroservicePlatform" for t in topics.values())
    eventually(
        lambda: _condition(kube, namespace, "TopicsReady").get("reason") == "KafkaTopicsApplied",
        timeout=30,
        what="TopicsReady",
    )


async def test_delete_policy_deletes_every_topic_when_every_event_is_removed(
    kube: Kube, namespace: str, stack: LocalStack
) -> None:
    doc = _platform(stack, deletionPolicy="Delete")
    domain = doc["spec"]["domain"]
    kube.apply(namespace, doc)
    eventually(lambda: _condition(kube, namespace, "Ready").get("status") == "True", timeout=90, what="Ready")
    assert await _broker_topics(stack, domain) == _planned(doc)

    for svc in doc["spec"]["services"]:
        svc.pop("publishes", None)
        svc.pop("subscribes", None)
    kube.apply(namespace, doc)
    eventually(
        lambda: (kube.get("msp", "shop", namespace) or {}).get("status", {}).get("observedGeneration") == 2,
        timeout=60,
        what="generation 2 observed",
    )
    # The broker's metadata may trail a deletion it has accepted by a moment.
    left = await _broker_topics(stack, domain)
    for _ in range(20):
        if not left:
            break
        await asyncio.sleep(0.5)
        left = await _broker_topics(stack, domain)
    assert left == {}, sorted(left)
    status = kube.get("msp", "shop", namespace)["status"]  # type: ignore[index]
    assert "topics" not in status
    assert _condition(kube, namespace, "TopicsReady")["reason"] == "NoTopics"
    events = kube.list("events", namespace)
    assert any(e["reason"] == "TopicsDeleted" and f"{domain}.order.created" in e["message"] for e in events)
