"""Reaching the tests' Kafka broker as it is secured (the local stack's: SASL_SSL, SCRAM-SHA-512,
ACLs), and giving a test platform's services the users and ACLs the operator would, with the
operator's own code (`keelson.kafkausers`, `keelson.kafka.admin`): services run by the tests then
hold exactly the rights they hold in a cluster."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest

from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.kafka.admin import KafkaAdmin, raw_acl
from keelson.kafkaclient import PLAINTEXT, KafkaSecurity
from keelson.kafkausers import plan_users


class KafkaBroker(str):
    """A bootstrap address that also knows how to connect (as the broker's admin)."""

    security: KafkaSecurity = PLAINTEXT

    @classmethod
    def of(cls, bootstrap: str, security: KafkaSecurity) -> KafkaBroker:
        broker = cls(bootstrap)
        broker.security = security
        return broker


def security_of(bootstrap: str) -> KafkaSecurity:
    return getattr(bootstrap, "security", PLAINTEXT)


def options(bootstrap: str) -> dict[str, Any]:
    """aiokafka keyword arguments for the broker's admin (plaintext for a bare address)."""
    return security_of(bootstrap).options()


def broker(request: pytest.FixtureRequest) -> KafkaBroker:
    """KEELSON_E2E_KAFKA_BOOTSTRAP (secured as KEELSON_KAFKA_* say), else the local stack's."""
    explicit = os.environ.get("KEELSON_E2E_KAFKA_BOOTSTRAP")
    if explicit:
        return KafkaBroker.of(explicit, KafkaSecurity.from_env(os.environ))
    stack = request.getfixturevalue("stack")
    try:
        return KafkaBroker.of(str(stack.kafka_bootstrap), stack.kafka_security)
    except (AttributeError, KeyError):
        pytest.fail("no Kafka broker: the local stack runs none and KEELSON_E2E_KAFKA_BOOTSTRAP is not set")


def spec_fields(bootstrap: str) -> dict[str, Any]:
    """`spec.kafka` fields for a secured broker: TLS and SCRAM users (the Secret names matter only
    to the operator; services run by the tests get their credentials from `provision_users`)."""
    security = security_of(bootstrap)
    fields: dict[str, Any] = {}
    if security.tls:
        fields["tls"] = {"caSecretRef": {"name": "kafka-ca"}}
    if security.mechanism:
        fields["authentication"] = {"type": "scram-sha-512", "adminSecretRef": {"name": "kafka-admin"}}
    return fields


async def provision_users(
    bootstrap: str, spec: MicroservicePlatformSpec, *, namespace: str, platform: str
) -> dict[str, KafkaSecurity]:
    """Each service's user, password and ACLs as the operator plans them; how each connects."""
    security = security_of(bootstrap)
    users = plan_users(spec, namespace=namespace, platform=platform)
    if not security.mechanism or not users:
        return {}
    passwords = {u.username: secrets.token_urlsafe(24) for u in users}
    async with KafkaAdmin(bootstrap, security=security) as admin:
        await admin.set_passwords(passwords)
        for user in users:
            wanted = {raw_acl(a.resource_type, a.name, a.operation) for a in user.acls}
            await admin.create_acls(f"User:{user.username}", wanted)
    return {u.service: security.as_user(u.username, passwords[u.username]) for u in users}
