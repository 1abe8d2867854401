"""`keelson design` against the real control plane: every design is admitted, and one platform per
system type reaches Ready through the operator."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml

from e2e.kube import Kube, eventually
from keelson.design import SYSTEM_TYPES, Blueprint, compose, parse_daily_users, system_blueprint
from keelson.devstack.stack import LocalStack

pytestmark = pytest.mark.cluster

LOADS = ("10k", "1M", "10M")


def test_every_design_is_admitted_by_the_apiserver(kube: Kube, namespace: str) -> None:
    """Server-side dry run: the CRD's schema and CEL rules, not only the pydantic model, accept them."""
    docs = [
        compose(system_blueprint(system), daily_users=parse_daily_users(load), name=f"{system}-{load.lower()}").manifest
        for system in SYSTEM_TYPES
        for load in LOADS
    ]
    proc = kube.run(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", "-o", "json", stdin=yaml.safe_dump_all(docs)
    )
    admitted = json.loads(proc.stdout)
    names = sorted(item["metadata"]["name"] for item in admitted.get("items", [admitted]))
    assert names == sorted(d["metadata"]["name"] for d in docs)
    # A dry run writes nothing.
    assert kube.list("msp", namespace) == []


def _ready(kube: Kube, name: str, namespace: str) -> dict[str, Any] | None:
    cond = kube.condition(name, namespace)
    return cond if cond and cond["status"] == "True" else None


def _own_domain(system: str, suffix: int) -> Blueprint:
    """The type's blueprint under a domain of this run's: topics are named by domain on a broker
    that other tests share (the example's `ecommerce.*` with 6 partitions must not meet this
    design's 7, which a topic cannot shrink to)."""
    blueprint = system_blueprint(system)
    return blueprint.model_copy(update={"domain": f"{blueprint.domain}-e2e{suffix}"})


def test_one_platform_per_type_reaches_ready(kube: Kube, stack: LocalStack) -> None:
    """All six at once, each in its own namespace, whole: their Kafka topics (retry topics and
    DLQs included) on the stack's broker and a PostgreSQL database per service, as `keelson dev
    apply` points them there (about 40 s for the six at 1M). On kwok, pods run without pulling
    images, so the placeholder images do not hold a platform back here; on a real cluster they
    would, visibly (ImagePullBackOff), until they are replaced."""
    suffix = os.getpid() % 10000
    platforms = {system: f"design-{system}-{suffix}" for system in SYSTEM_TYPES}
    designs = {system: compose(_own_domain(system, suffix), daily_users=1_000_000) for system in SYSTEM_TYPES}
    for system, namespace in platforms.items():
        doc = designs[system].manifest
        # Topics and databases go with the platform: the broker and server outlive this test.
        doc["spec"]["kafka"]["deletionPolicy"] = doc["spec"]["databases"]["deletionPolicy"] = "Delete"
        stack.apply_manifest(yaml.safe_dump(doc), namespace)
    try:
        for system, namespace in platforms.items():
            eventually(lambda s=system, n=namespace: _ready(kube, s, n), timeout=120, what=f"{system} Ready")
            status = (kube.get("msp", system, namespace) or {})["status"]
            conditions = {c["type"]: c["status"] for c in status["conditions"]}
            assert conditions["TopicsReady"] == conditions["DatabasesReady"] == "True", status["conditions"]
            assert status["sizing"]["maxReplicas"] == 7 and status["sizing"]["partitions"] == 7
            facts = designs[system].facts
            assert {s["name"] for s in status["services"] if s["ready"]} == {s.name for s in facts.services}
            assert {d["service"] for d in status["databases"] if d["ready"]} == {d.service for d in facts.databases}
            dlqs = {t["name"] for t in status["topics"] if t["role"] == "dlq" and t["exists"]}
            assert dlqs == {s.dlq for s in facts.subscriptions}
    finally:
        for namespace in platforms.values():
            kube.run("delete", "namespace", namespace, "--wait=false", check=False)
