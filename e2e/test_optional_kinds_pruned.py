"""Children of the optional kinds are pruned like the built-in ones: a Strimzi KafkaTopic whose event
is no longer declared, and CloudNativePG's Cluster and Databases once no service has a database,
are deleted by the operator (deletionPolicy Delete; with Retain they would be orphaned, not kept
owned). No other test removes them, so this is also where the chart's delete on these kinds is
exercised, which e2e/test_zz_least_privilege.py requires of every permission."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.kube import Kube, eventually
from tests.cases.invalid_platforms import example

pytestmark = pytest.mark.cluster

CNPG_KINDS = ("clusters.postgresql.cnpg.io", "databases.postgresql.cnpg.io")


def _platform() -> dict[str, Any]:
    doc = example()
    spec = doc["spec"]
    spec["kafka"] = {
        "provider": "strimzi",
        "strimziCluster": "my-cluster",
        "partitions": 1,
        "replicationFactor": 1,
        "deletionPolicy": "Delete",
    }
    spec["databases"] = {"provider": "cloudnative-pg", "deletionPolicy": "Delete", "instances": 1}
    return doc


def _count(kube: Kube, kind: str, namespace: str) -> int:
    return len(kube.list(kind, namespace))


def test_kafkatopics_and_cloudnative_pg_objects_no_longer_declared_are_deleted(
    kube: Kube, namespace: str, third_party_kinds: None
) -> None:
    doc = _platform()
    kube.apply(namespace, doc)
    eventually(lambda: _count(kube, "kafkatopics", namespace) > 0, timeout=60, what="KafkaTopics")
    for kind in CNPG_KINDS:
        eventually(lambda kind=kind: _count(kube, kind, namespace) > 0, timeout=60, what=kind)

    for svc in doc["spec"]["services"]:
        for field in ("publishes", "subscribes", "database"):
            svc.pop(field, None)
    kube.apply(namespace, doc)
    eventually(lambda: _count(kube, "kafkatopics", namespace) == 0, timeout=60, what="KafkaTopics deleted")
    for kind in CNPG_KINDS:
        eventually(lambda kind=kind: _count(kube, kind, namespace) == 0, timeout=60, what=f"{kind} deleted")


def test_the_public_route_follows_the_route_kind_both_ways(kube: Kube, namespace: str, third_party_kinds: None) -> None:
    """Deterministically, whatever the generated transitions draw: Ingress -> HTTPRoute -> Ingress,
    each switch deleting the other kind's object (the chart's delete on ingresses and httproutes)."""
    doc = example()
    gateway = doc["spec"]["gateway"]
    kube.apply(namespace, doc)
    eventually(lambda: _count(kube, "ingresses", namespace) == 1, timeout=60, what="Ingress")
    ingress = {k: gateway.pop(k) for k in ("ingressClassName", "tlsSecretName")}
    gateway.update(routeKind="HTTPRoute", gatewayRef={"name": "public"})
    kube.apply(namespace, doc)
    eventually(lambda: _count(kube, "httproutes", namespace) == 1, timeout=60, what="HTTPRoute")
    eventually(lambda: _count(kube, "ingresses", namespace) == 0, timeout=60, what="Ingress deleted")
    del gateway["gatewayRef"]
    gateway.update(routeKind="Ingress", **ingress)
    kube.apply(namespace, doc)
    eventually(lambda: _count(kube, "httproutes", namespace) == 0, timeout=60, what="HTTPRoute deleted")
    eventually(lambda: _count(kube, "ingresses", namespace) == 1, timeout=60, what="Ingress again")
