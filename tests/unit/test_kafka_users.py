"""Each service's Kafka user: the least ACLs (pure plan), the wiring into its pods, the KafkaUser
for Strimzi, and the client settings; the real broker's refusals are in e2e/test_kafka_users.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform, MicroservicePlatformSpec
from keelson.controller.kafka_access import KafkaAccess, KafkaAccessProblem
from keelson.controller.kafka_users import KafkaUsersArea
from keelson.kafkaclient import KafkaSecurity, KafkaSecurityError
from keelson.kafkausers import Acl, plan_users
from keelson.render import RenderContext, render_platform
from tests.cases.invalid_platforms import example

SECURE = {
    "tls": {"caSecretRef": {"name": "kafka-ca"}},
    "authentication": {"type": "scram-sha-512", "adminSecretRef": {"name": "kafka-admin"}},
}


def _spec(**kafka: Any) -> MicroservicePlatformSpec:
    doc = example()["spec"]
    doc["kafka"].update(SECURE, **kafka)
    return MicroservicePlatformSpec.model_validate(doc)


def test_a_service_may_write_what_it_publishes_and_read_its_subscriptions_with_its_own_group() -> None:
    users = {u.service: u for u in plan_users(_spec(), namespace="ns", platform="shop")}
    assert set(users) == {"users", "orders", "payments", "notifications"}  # the gateway has no events
    payments = users["payments"]
    assert payments.username == "ns.shop.payments" and payments.secret == "shop-payments-kafka"
    assert payments.acls == (
        Acl("topic", "ecommerce.payment.completed", "Write"),
        Acl("topic", "ecommerce.payment.failed", "Write"),
    )
    orders = set(users["orders"].acls)
    assert Acl("topic", "ecommerce.payment.completed", "Read") in orders
    assert Acl("topic", "ecommerce.payment.completed.orders.retry-1", "Read") in orders
    assert Acl("topic", "ecommerce.payment.completed.orders.retry-1", "Write") in orders
    assert Acl("topic", "ecommerce.payment.completed.orders.dlq", "Write") in orders
    assert Acl("topic", "ecommerce.payment.completed.orders.dlq", "Read") not in orders
    assert Acl("group", "ecommerce.orders", "Read") in orders
    assert Acl("topic", "ecommerce.payment.completed", "Write") not in orders  # payments publishes it
    assert {a.resource_type for a in orders} == {"topic", "group"}  # no cluster right


def test_no_users_without_authentication_or_with_provider_none() -> None:
    plain = MicroservicePlatformSpec.model_validate(example()["spec"])
    assert plan_users(plain, namespace="ns", platform="shop") == []
    assert plan_users(_spec(provider="none"), namespace="ns", platform="shop") == []


def test_provider_admin_needs_an_admin_secret() -> None:
    doc = example()["spec"]
    doc["kafka"]["authentication"] = {"type": "scram-sha-512"}
    with pytest.raises(ValueError, match="adminSecretRef is required"):
        MicroservicePlatformSpec.model_validate(doc)


def test_the_pods_read_their_credentials_and_the_ca_from_secrets() -> None:
    ctx = RenderContext(name="shop", namespace="ns", spec=_spec())
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render_platform(ctx)}
    container = objects[("Deployment", "orders")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"].startswith("KEELSON_KAFKA")}
    assert env == {
        "KEELSON_KAFKA_USERNAME": {"name": "shop-orders-kafka", "key": "username"},
        "KEELSON_KAFKA_PASSWORD": {"name": "shop-orders-kafka", "key": "password"},
        "KEELSON_KAFKA_CA": {"name": "kafka-ca", "key": "ca.crt"},
    }
    config = objects[("ConfigMap", "orders-config")]["data"]
    assert config["KEELSON_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert "KEELSON_KAFKA_PASSWORD" not in config  # never a secret in a ConfigMap
    gateway = objects[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    assert not any(e["name"].startswith("KEELSON_KAFKA") for e in gateway.get("env", []))


def test_strimzi_gets_a_kafka_user_per_service_on_the_services_secret() -> None:
    spec = _spec(provider="strimzi", strimziCluster="my-cluster")
    ctx = RenderContext(name="shop", namespace="ns", spec=spec)
    users = {o["metadata"]["name"]: o for o in render_platform(ctx) if o["kind"] == "KafkaUser"}
    assert set(users) == {"shop-users", "shop-orders", "shop-payments", "shop-notifications"}
    payments = users["shop-payments"]["spec"]
    assert payments["authentication"]["password"]["valueFrom"]["secretKeyRef"] == {
        "name": "shop-payments-kafka",
        "key": "password",
    }
    assert payments["authorization"]["acls"] == [
        {
            "type": "allow",
            "resource": {"type": "topic", "name": f"ecommerce.payment.{e}", "patternType": "literal"},
            "operations": ["Write"],
            "host": "*",
        }
        for e in ("completed", "failed")
    ]


def test_client_settings_from_the_environment_hide_the_password() -> None:
    env = {
        "KEELSON_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KEELSON_KAFKA_USERNAME": "u",
        "KEELSON_KAFKA_PASSWORD": "s3cret-value",
    }
    security = KafkaSecurity.from_env(env)
    assert (security.protocol, security.mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert "s3cret-value" not in repr(security)
    options = security.options()
    assert options["sasl_plain_password"] == "s3cret-value" and options["ssl_context"].check_hostname
    assert KafkaSecurity.from_env({}).options() == {"security_protocol": "PLAINTEXT"}
    with pytest.raises(KafkaSecurityError, match="USERNAME"):
        KafkaSecurity.from_env({"KEELSON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})


class _Secrets:
    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        data = self.secrets.get(name)
        if data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def test_a_cleanup_outlives_the_secrets_of_a_deleted_namespace() -> None:
    kafka = _spec().kafka
    assert kafka is not None
    secrets = _Secrets({"kafka-ca": {"ca.crt": "PEM"}, "kafka-admin": {"username": "admin", "password": "pw"}})
    access = KafkaAccess(secrets)
    read = await access.security("ns", kafka)
    assert (read.username, read.ca_pem, read.protocol) == ("admin", "PEM", "SASL_SSL")
    secrets.secrets.clear()  # the namespace is going, its Secrets first
    with pytest.raises(KafkaAccessProblem, match="kafka-ca"):
        await access.security("ns", kafka)
    assert await access.security("ns", kafka, deleting=True) == read


class _NoCache:
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def owned_by(self, uid: str) -> list[dict[str, Any]]:
        return []


def _unreachable(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a released user must not send the operator to the brokers")


@pytest.mark.parametrize(
    "kafka",
    [
        {"provider": "none", "tls": None, "authentication": None},
        {"provider": "admin", "tls": None, "authentication": None},
    ],
)
async def test_leaving_admin_management_releases_the_users_without_a_broker(kafka: dict[str, Any]) -> None:
    # Found by the generated platforms: provider admin → none left the area trying to delete the
    # old users with the new spec's (plaintext, credential-less) settings, BrokerUnreachable for good.
    doc = example()
    doc["spec"]["kafka"].update(kafka)
    doc["metadata"] = {"name": "shop", "namespace": "ns", "uid": "u1"}
    doc["status"] = {
        "kafkaUsers": [
            {
                "service": "orders",
                "user": "ns.shop.orders",
                "secret": "shop-orders-kafka",
                "ready": True,
                "provider": "admin",
            }
        ]
    }
    model = MicroservicePlatform.model_validate({k: v for k, v in doc.items() if k != "status"})
    area = KafkaUsersArea(_Secrets({}), _NoCache(), admin=_unreachable)
    result = await area.reconcile(doc, model)
    assert (result.condition.status, result.condition.reason) == ("True", "KafkaUsersReleased")
    assert result.status == {"kafkaUsers": []} and not result.retry and not result.objects
    assert [e.reason for e in result.events] == ["KafkaUsersReleased"]
    assert "ns.shop.orders" in result.events[0].message
