"""The Kubernetes side of a service's Kafka user: its credentials Secret, the Deployment's env (the
Secret, and the CA of `spec.kafka.tls`), and for provider strimzi its `KafkaUser`. Pure: the area
(`controller.kafka_users`) supplies the passwords."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from keelson.databases.rotation import TOKEN_ANNOTATION
from keelson.effective import EffectiveService
from keelson.kafkaclient import SCRAM_SHA_512, KafkaSecurity
from keelson.kafkausers import (
    PASSWORD_KEY,
    SECRET_TYPE,
    USERNAME_KEY,
    ServiceUser,
    kafka_user_name,
    managed,
    plan_users,
    secret_name,
)
from keelson.render.context import RenderContext
from keelson.render.labels import metadata

COMPONENT_LABEL = "keelson.dev/component"
KAFKA_COMPONENT = "kafka"
# On the pod template (a rotated password rolls the pods) and on the KafkaUser (Strimzi's User
# Operator reconciles it, and so reads the new password, at once rather than at its next resync).
CHECKSUM_ANNOTATION = "keelson.dev/kafka-checksum"
STRIMZI_API_VERSION = "kafka.strimzi.io/v1"
CLUSTER_LABEL = "strimzi.io/cluster"
DEFAULT_CA_KEY = "ca.crt"


def uses_kafka(svc: EffectiveService) -> bool:
    return bool(svc.publishes or svc.subscribes)


def security_config(ctx: RenderContext) -> dict[str, str]:
    """The ConfigMap's part (no secret in it): the protocol, and the mechanism when the service
    has a user of its own."""
    kafka = ctx.spec.kafka
    if kafka is None:
        return {}
    protocol = KafkaSecurity(tls=bool(kafka.tls)).protocol
    if managed(ctx.spec):
        protocol = f"SASL_{protocol}"
        return {"KEELSON_KAFKA_SECURITY_PROTOCOL": protocol, "KEELSON_KAFKA_SASL_MECHANISM": SCRAM_SHA_512}
    return {"KEELSON_KAFKA_SECURITY_PROTOCOL": protocol}


def kafka_env(ctx: RenderContext, svc: EffectiveService) -> list[dict[str, Any]]:
    """The Deployment's env from Secrets: the service's credentials and the brokers' CA."""
    kafka = ctx.spec.kafka
    if kafka is None or not ctx.kafka_bootstrap or not uses_kafka(svc):
        return []
    env = []
    if managed(ctx.spec):
        name = secret_name(ctx.name, svc.name)
        for var, key in (("KEELSON_KAFKA_USERNAME", USERNAME_KEY), ("KEELSON_KAFKA_PASSWORD", PASSWORD_KEY)):
            env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    ca = kafka.tls.caSecretRef if kafka.tls else None
    if ca is not None:
        ref = {"name": ca.name, "key": ca.key or DEFAULT_CA_KEY}
        env.append({"name": "KEELSON_KAFKA_CA", "valueFrom": {"secretKeyRef": ref}})
    return env


def credentials_checksum(username: str, password: str) -> str:
    """A truncated digest of a 256-bit random password reveals nothing about it."""
    return hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()[:16]


def render_kafka_secret(ctx: RenderContext, user: ServiceUser, password: str, *, token: str | None) -> dict[str, Any]:
    meta = metadata(ctx, user.secret, user.service)
    meta["labels"][COMPONENT_LABEL] = KAFKA_COMPONENT
    if token:
        meta["annotations"] = {TOKEN_ANNOTATION: token}
    plain = {USERNAME_KEY: user.username, PASSWORD_KEY: password}
    # data, not stringData: the API server turns stringData into data, which would never match.
    data = {k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": SECRET_TYPE, "data": data}


def strimzi_acls(user: ServiceUser) -> list[dict[str, Any]]:
    """The same ACLs as provider admin's, in KafkaUser form (one rule per resource)."""
    by_resource: dict[tuple[str, str], list[str]] = {}
    for acl in user.acls:
        by_resource.setdefault((acl.resource_type, acl.name), []).append(acl.operation)
    return [
        {
            "type": "allow",
            "resource": {"type": rtype, "name": name, "patternType": "literal"},
            "operations": sorted(operations),
            "host": "*",
        }
        for (rtype, name), operations in sorted(by_resource.items())
    ]


def render_kafka_users(ctx: RenderContext) -> list[dict[str, Any]]:
    """provider strimzi: a KafkaUser per service, SCRAM-SHA-512 with the password Keelson keeps in
    the service's Secret (one Secret, one rotation, for both providers)."""
    kafka = ctx.spec.kafka
    if kafka is None or kafka.provider != "strimzi" or not kafka.strimziCluster:
        return []
    out = []
    for user in plan_users(ctx.spec, namespace=ctx.namespace, platform=ctx.name):
        meta = metadata(ctx, kafka_user_name(ctx.name, user.service), user.service, with_service=False)
        meta["labels"][CLUSTER_LABEL] = kafka.strimziCluster
        checksum = ctx.pod_annotations.get(user.service, {}).get(CHECKSUM_ANNOTATION)
        if checksum:
            meta["annotations"] = {CHECKSUM_ANNOTATION: checksum}
        spec = {
            "authentication": {
                "type": "scram-sha-512",
                "password": {"valueFrom": {"secretKeyRef": {"name": user.secret, "key": PASSWORD_KEY}}},
            },
            "authorization": {"type": "simple", "acls": strimzi_acls(user)},
        }
        out.append({"apiVersion": STRIMZI_API_VERSION, "kind": "KafkaUser", "metadata": meta, "spec": spec})
    return out
