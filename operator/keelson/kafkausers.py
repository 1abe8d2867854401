"""Each service's own Kafka user: its name, its Secret, and the least its ACLs allow. Pure; the
operator provisions the plan (`controller.kafka_users`, `render.kafkausers`).

A service that publishes or subscribes gets, with `spec.kafka.authentication`:

- Write on each topic it publishes;
- Read on each topic it subscribes to, Read and Write on its own retry topics of it (the consumer
  forwards a failing message to the next one and reads them back) and Write on its own DLQ;
- Read on its consumer group `<domain>.<service>`;

and nothing else: no other topic, no other group, no cluster operation (Write on a topic lets the
idempotent producer in, KIP-679; Read and Write imply Describe). Every ACL is literal: a prefix
would also match names someone else may declare later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.effective import effective_services
from keelson.topics import subscriptions

ResourceType = Literal["topic", "group"]
Operation = Literal["Read", "Write"]
SECRET_SUFFIX = "-kafka"
MAX_NAME = 253
# Keys of the Secret `<platform>-<service>-kafka`; `username` and `password` make it a valid
# kubernetes.io/basic-auth Secret.
USERNAME_KEY = "username"
PASSWORD_KEY = "password"
SECRET_TYPE = "kubernetes.io/basic-auth"


@dataclass(frozen=True, order=True)
class Acl:
    resource_type: ResourceType
    name: str
    operation: Operation


@dataclass(frozen=True)
class ServiceUser:
    service: str
    username: str  # the Kafka principal is User:<username>
    secret: str
    acls: tuple[Acl, ...]


def consumer_group(domain: str, service: str) -> str:
    """A service's consumer group: one per service of a domain, shared by its replicas."""
    return f"{domain}.{service}"


def _cut(name: str, *parts: str, suffix: str = "") -> str:
    if len(name) + len(suffix) <= MAX_NAME:
        return name + suffix
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]
    tail = f"-{digest}{suffix}"
    return name[: MAX_NAME - len(tail)].rstrip("-.") + tail


def secret_name(platform: str, service: str) -> str:
    """`<platform>-<service>-kafka`, the Secret with the service's Kafka credentials."""
    return _cut(f"{platform}-{service}", platform, service, suffix=SECRET_SUFFIX)


def kafka_user_name(platform: str, service: str) -> str:
    """provider strimzi: the KafkaUser's name, which Strimzi makes the user name (and the name of a
    Secret of its own: hence not the one of `secret_name`)."""
    return _cut(f"{platform}-{service}", platform, service)


def username(provider: str, namespace: str, platform: str, service: str) -> str:
    """provider admin: `<namespace>.<platform>.<service>`, unique on a cluster shared by many
    namespaces and unambiguous (neither a namespace nor a service name has a dot); strimzi: the
    KafkaUser's name."""
    if provider == "strimzi":
        return kafka_user_name(platform, service)
    return f"{namespace}.{platform}.{service}"


def managed(spec: MicroservicePlatformSpec) -> bool:
    """Whether Keelson gives each service a user of its own: with authentication, under a provider
    that manages Kafka (provider none leaves users to whoever runs the brokers)."""
    kafka = spec.kafka
    return bool(kafka and kafka.authentication and kafka.provider in ("admin", "strimzi"))


def service_acls(spec: MicroservicePlatformSpec, service: str) -> tuple[Acl, ...]:
    svc = next(s for s in effective_services(spec) if s.name == service)
    acls = {Acl("topic", topic, "Write") for topic in svc.publishes}
    subs = [s for s in subscriptions(spec) if s.service == service]
    for sub in subs:
        acls.add(Acl("topic", sub.topic, "Read"))
        for retry in sub.retry_topics:
            acls |= {Acl("topic", retry, "Read"), Acl("topic", retry, "Write")}
        acls.add(Acl("topic", sub.dlq, "Write"))
    if subs:
        acls.add(Acl("group", consumer_group(spec.domain, service), "Read"))
    return tuple(sorted(acls))


def plan_users(spec: MicroservicePlatformSpec, *, namespace: str, platform: str) -> list[ServiceUser]:
    """The user of every service that publishes or subscribes, when `managed(spec)`."""
    if not managed(spec):
        return []
    assert spec.kafka is not None
    provider = spec.kafka.provider or "none"
    return [
        ServiceUser(
            service=svc.name,
            username=username(provider, namespace, platform, svc.name),
            secret=secret_name(platform, svc.name),
            acls=service_acls(spec, svc.name),
        )
        for svc in effective_services(spec)
        if svc.publishes or svc.subscribes
    ]
