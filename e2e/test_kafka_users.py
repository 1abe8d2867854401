"""Each service's own Kafka user, made by the operator, held to its ACLs by the real broker (the
local stack's: SASL_SSL, SCRAM-SHA-512, StandardAuthorizer); and, for provider strimzi, KafkaUser
objects the real Strimzi CRD accepts."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from e2e.conftest import established
from e2e.kube import Kube, eventually, third_party_crds
from keelson.devstack.stack import LocalStack
from keelson.kafka.admin import KafkaAdmin
from keelson.kafkaclient import KafkaSecurity
from tests.cases.invalid_platforms import workloads_example

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

STRIMZI_USER_CRD = "strimzi-kafkauser.yaml"


def _platform(stack: LocalStack, **kafka: Any) -> dict[str, Any]:
    doc = workloads_example()  # gateway, users, orders, payments, notifications; no databases
    doc["spec"]["domain"] = f"acl{uuid.uuid4().hex[:8]}"
    doc["spec"]["kafka"] = {"provider": "admin", **stack.kafka_settings(), "replicationFactor": 1, **kafka}
    return doc


def _condition(kube: Kube, namespace: str, ctype: str) -> dict[str, Any]:
    return kube.condition("shop", namespace, ctype) or {}


def _secret(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    secret = kube.get("secret", name, namespace)
    if secret is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _as(stack: LocalStack, creds: dict[str, str]) -> KafkaSecurity:
    return stack.kafka_security.as_user(creds["username"], creds["password"])


@asynccontextmanager
async def _producer(stack: LocalStack, security: KafkaSecurity) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, request_timeout_ms=10000, **security.options())
    try:
        await producer.start()  # a refused login raises here: stopped all the same
        yield producer
    finally:
        await producer.stop()


async def _read_from_start(stack: LocalStack, security: KafkaSecurity, topic: str, group: str | None) -> bytes:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **security.options(),
    )
    await consumer.start()
    try:
        if group is None:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
        else:
            consumer.subscribe([topic])
        record = await consumer.getone()
        return bytes(record.value)
    finally:
        await consumer.stop()


async def _users_on_broker(stack: LocalStack, names: list[str]) -> set[str]:
    async with KafkaAdmin(stack.kafka_bootstrap, security=stack.kafka_security) as admin:
        return await admin.scram_users(names)


async def test_each_service_is_held_to_its_own_topics_and_group(kube: Kube, namespace: str, stack: LocalStack) -> None:
    doc = _platform(stack, partitions=1)
    domain = doc["spec"]["domain"]
    kube.apply(namespace, doc)
    eventually(
        lambda: _condition(kube, namespace, "KafkaUsersReady").get("status") == "True", timeout=120, what="users"
    )
    eventually(lambda: _condition(kube, namespace, "TopicsReady").get("status") == "True", timeout=60, what="topics")
    status = kube.get("msp", "shop", namespace)["status"]  # type: ignore[index]
    users = {u["service"]: u for u in status["kafkaUsers"]}
    assert set(users) == {"users", "orders", "payments", "notifications"}  # the gateway has no events
    assert users["orders"] == {
        "service": "orders",
        "provider": "admin",
        "user": f"{namespace}.shop.orders",
        "secret": "shop-orders-kafka",
        "ready": True,
    }
    orders, notifications = (
        _secret(kube, namespace, "shop-orders-kafka"),
        _secret(kube, namespace, "shop-notifications-kafka"),
    )
    assert orders and notifications and orders["username"] == f"{namespace}.shop.orders"
    # Wired into the pods: the Secret's keys and the CA, the protocol in the ConfigMap.
    container = kube.get("deployment", "orders", namespace)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert env["KEELSON_KAFKA_USERNAME"] == {"name": "shop-orders-kafka", "key": "username"}
    assert env["KEELSON_KAFKA_PASSWORD"] == {"name": "shop-orders-kafka", "key": "password"}
    assert env["KEELSON_KAFKA_CA"] == {"name": "kafka-ca", "key": "ca.crt"}
    config = kube.get("configmap", "orders-config", namespace)["data"]  # type: ignore[index]
    assert (config["KEELSON_KAFKA_SECURITY_PROTOCOL"], config["KEELSON_KAFKA_SASL_MECHANISM"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )

    created, completed = f"{domain}.order.created", f"{domain}.payment.completed"
    async with _producer(stack, _as(stack, orders)) as producer:
        await producer.send_and_wait(created, b"order 1")  # it publishes order.created
        with pytest.raises(TopicAuthorizationFailedError):  # payments publishes payment.completed, not orders
            await producer.send_and_wait(completed, b"forged")
    # order.created is notifications' subscription: orders may write it, not read it.
    with pytest.raises(TopicAuthorizationFailedError):
        await _read_from_start(stack, _as(stack, orders), created, None)
    # notifications reads it with its own group, and only with that one.
    assert await _read_from_start(stack, _as(stack, notifications), created, f"{domain}.notifications") == b"order 1"
    with pytest.raises(GroupAuthorizationFailedError):
        await _read_from_start(stack, _as(stack, notifications), created, f"{domain}.orders")

    # Rotation, as for databases: a new password; the old one no longer logs in.
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/rotate-credentials=orders@r1")
    eventually(
        lambda: (_secret(kube, namespace, "shop-orders-kafka") or {}).get("password") not in (None, orders["password"]),
        timeout=60,
        what="orders' password rotated",
    )
    rotated = _secret(kube, namespace, "shop-orders-kafka")
    assert rotated and _secret(kube, namespace, "shop-notifications-kafka") == notifications
    with pytest.raises(KafkaConnectionError):
        async with _producer(stack, _as(stack, orders)):
            pass
    async with _producer(stack, _as(stack, rotated)) as producer:
        await producer.send_and_wait(created, b"order 2")

    # A service that no longer uses Kafka loses its user, its ACLs and its Secret.
    for svc in doc["spec"]["services"]:
        if svc["name"] == "notifications":
            svc.pop("subscribes", None)
    kube.apply(namespace, doc)
    user = f"{namespace}.shop.notifications"

    async def notifications_gone() -> bool:
        return user not in await _users_on_broker(stack, [user])

    eventually(lambda: kube.get("secret", "shop-notifications-kafka", namespace) is None, timeout=60, what="Secret")
    assert await notifications_gone()

    # With the platform, every user goes (the topics are retained: deletionPolicy Retain).
    kube.run("delete", "msp", "shop", "-n", namespace, "--timeout=90s")
    names = [f"{namespace}.shop.{s}" for s in ("users", "orders", "payments")]
    assert await _users_on_broker(stack, names) == set()


def test_strimzi_kafka_users_are_accepted_by_the_real_crd(kube: Kube, namespace: str, stack: LocalStack) -> None:
    kube.run("apply", "--server-side", "-f", str(third_party_crds() / STRIMZI_USER_CRD))
    eventually(lambda: established(kube, "kafkausers.kafka.strimzi.io"), timeout=60, what="KafkaUser CRD")
    doc = workloads_example()
    doc["spec"]["domain"] = f"strimzi{os.getpid() % 1000}"
    doc["spec"]["kafka"] = {
        "provider": "strimzi",
        "strimziCluster": "my-cluster",
        "tls": {"caSecretRef": {"name": "my-cluster-cluster-ca-cert"}},
        "authentication": {"type": "scram-sha-512"},
    }
    kube.apply(namespace, doc)
    eventually(lambda: len(kube.list("kafkausers", namespace)) == 4, timeout=60, what="KafkaUsers")
    users = {u["metadata"]["name"]: u for u in kube.list("kafkausers", namespace)}
    orders = users["shop-orders"]
    assert orders["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
    assert orders["spec"]["authentication"] == {
        "type": "scram-sha-512",
        "password": {"valueFrom": {"secretKeyRef": {"name": "shop-orders-kafka", "key": "password"}}},
    }
    rules = {
        (a["resource"]["type"], a["resource"]["name"]): a["operations"] for a in orders["spec"]["authorization"]["acls"]
    }
    domain = doc["spec"]["domain"]
    assert rules[("topic", f"{domain}.order.created")] == ["Write"]
    assert rules[("group", f"{domain}.orders")] == ["Read"]
    assert rules[("topic", f"{domain}.payment.completed")] == ["Read"]  # its subscription
    assert all(op in ("Read", "Write") for ops in rules.values() for op in ops)
    secret = _secret(kube, namespace, "shop-orders-kafka")
    assert secret and secret["username"] == "shop-orders" and len(secret["password"]) >= 32
    # No User Operator runs here: the users are pending, and say so.
    eventually(
        lambda: (
            _condition(kube, namespace, "KafkaUsersReady").get("reason") == "KafkaUsersPending"
            or _condition(kube, namespace, "KafkaUsersReady").get("reason") == "KafkaUsersApplied"
        ),
        timeout=30,
        what="KafkaUsersReady",
    )

    # A rotation changes the password in the Secret and the KafkaUser's checksum (Strimzi reconciles).
    before = orders["metadata"].get("annotations", {}).get("keelson.dev/kafka-checksum")
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/rotate-credentials=orders@r1")
    eventually(
        lambda: (
            (kube.get("kafkauser", "shop-orders", namespace) or {})
            .get("metadata", {})
            .get("annotations", {})
            .get("keelson.dev/kafka-checksum")
            not in (None, before)
        ),
        timeout=60,
        what="KafkaUser re-annotated",
    )
    assert (_secret(kube, namespace, "shop-orders-kafka") or {}).get("password") != secret["password"]

    # A service without events loses its KafkaUser.
    for svc in doc["spec"]["services"]:
        if svc["name"] == "notifications":
            svc.pop("subscribes", None)
    kube.apply(namespace, doc)
    eventually(lambda: kube.get("kafkauser", "shop-notifications", namespace) is None, timeout=60, what="pruned")


async def test_a_platform_that_stops_managing_users_releases_them(
    kube: Kube, namespace: str, stack: LocalStack
) -> None:
    # Found by the generated platforms: provider admin → none, the area tried to delete the users
    # with the new spec's plaintext settings against the secured broker and stayed BrokerUnreachable.
    doc = _platform(stack, partitions=1)
    kube.apply(namespace, doc)
    eventually(
        lambda: _condition(kube, namespace, "KafkaUsersReady").get("reason") == "KafkaUsersReady",
        timeout=120,
        what="users",
    )
    names = [f"{namespace}.shop.{s}" for s in ("users", "orders", "payments", "notifications")]
    assert await _users_on_broker(stack, names) == set(names)

    doc["spec"]["kafka"] = {"provider": "none", "bootstrapServers": stack.kafka_bootstrap, "replicationFactor": 1}
    kube.apply(namespace, doc)
    generation = kube.get("msp", "shop", namespace)["metadata"]["generation"]  # type: ignore[index]

    def released() -> bool:
        cond = _condition(kube, namespace, "KafkaUsersReady")
        return cond.get("observedGeneration") == generation and cond.get("reason") == "KafkaUsersReleased"

    eventually(released, timeout=60, what="users released")
    assert _condition(kube, namespace, "KafkaUsersReady")["status"] == "True"
    assert (kube.get("msp", "shop", namespace) or {}).get("status", {}).get("kafkaUsers") == []
    eventually(lambda: kube.get("secret", "shop-orders-kafka", namespace) is None, timeout=60, what="Secrets pruned")
    events = kube.run("get", "events", "-n", namespace, "--field-selector", "reason=KafkaUsersReleased", "-o", "json")
    assert f"{namespace}.shop.orders" in events.stdout
    # Released, not deleted: the broker's operators own them now (this test tidies its own).
    assert await _users_on_broker(stack, names) == set(names)
    async with KafkaAdmin(stack.kafka_bootstrap, security=stack.kafka_security) as admin:
        for name in names:
            await admin.delete_acls(f"User:{name}", everything=True)
        await admin.delete_users(names)
