"""`keelson design` against the real control plane: every design is admitted, and one platform per
system type reaches Ready through the operator."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml

from e2e.kube import Kube, eventually
from keelson.design import SYSTEM_TYPES, compose, parse_daily_users, system_blueprint

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


def _workloads_only(manifest: dict[str, Any]) -> dict[str, Any]:
    """The design without its Kafka topics and databases: those areas have their own cluster tests
    (test_topics.py, test_databases.py), and six platforms' worth of topics and databases on one
    local broker and server would make this test slow without testing anything new."""
    doc = json.loads(json.dumps(manifest))
    spec = doc["spec"]
    spec.pop("kafka", None)
    spec.pop("databases", None)
    for svc in spec["services"]:
        svc.pop("database", None)
    return doc


def _ready(kube: Kube, name: str, namespace: str) -> dict[str, Any] | None:
    cond = kube.condition(name, namespace)
    return cond if cond and cond["status"] == "True" else None


def test_one_platform_per_type_reaches_ready(kube: Kube) -> None:
    """All six at once, each in its own namespace. On kwok, pods run without pulling images, so the
    placeholder images do not hold a platform back here (on a real cluster they would, visibly)."""
    suffix = os.getpid() % 10000
    platforms = {}
    for system in SYSTEM_TYPES:
        namespace = kube.namespace(f"design-{system}-{suffix}")
        platforms[system] = namespace
        doc = _workloads_only(compose(system_blueprint(system), daily_users=1_000_000).manifest)
        kube.apply(namespace, doc)
    try:
        for system, namespace in platforms.items():
            cond = eventually(lambda s=system, n=namespace: _ready(kube, s, n), timeout=120, what=f"{system} Ready")
            assert cond["reason"], cond
            status = (kube.get("msp", system, namespace) or {})["status"]
            assert status["sizing"]["maxReplicas"] == 7 and status["sizing"]["partitions"] == 7
            wanted = {
                s["name"] for s in compose(system_blueprint(system), daily_users=1_000_000).manifest["spec"]["services"]
            }
            assert {s["name"] for s in status["services"] if s["ready"]} == wanted
    finally:
        for namespace in platforms.values():
            kube.run("delete", "namespace", namespace, "--wait=false", check=False)
