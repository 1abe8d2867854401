"""PlatformServices on the real control plane, broker and database server: product teams attach
services from their own namespaces; the platform's spec.tenancy decides which, and what they may
do; their objects live in their namespaces, owned by their PlatformServices; the NetworkPolicies,
evaluated, allow a cross-namespace call only where it is declared; deleting a team's service
removes its objects and leaves the platform Ready; and an idle platform with attached services
writes nothing. The operator holds only its chart's permissions."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.kube import Kube, eventually, idle_window, operator_writes
from e2e.netpolicy import connects
from keelson.devstack.stack import LocalStack
from keelson.render.labels import NAME_LABEL, PLATFORM_LABEL

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.postgres]

TENANT_LABEL = "keelson.dev/tenant"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "components"
PORT = 8080


def _platform(stack: LocalStack, tenant: str) -> dict[str, Any]:
    # A domain of its own: the broker is shared, topic names are not.
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": "shop"},
        "spec": {
            "domain": f"shop{tenant}",
            "kafka": {"provider": "admin", **stack.kafka_settings(), "replicationFactor": 1},
            "databases": {"provider": "postgres", "adminSecretRef": {"name": "pg-admin"}},
            "tenancy": {"namespaceSelector": {"matchLabels": {TENANT_LABEL: tenant}}, "expose": True},
            "gateway": {"service": "api"},
            "services": [
                {
                    "name": "api",
                    "image": "shop/api:1",
                    "calls": ["catalog"],
                    "autoscaling": {"enabled": False},
                    "replicas": 1,
                },
                {
                    "name": "catalog",
                    "image": "shop/catalog:1",
                    "publishes": ["product.changed"],
                    "replicas": 1,
                    "autoscaling": {"enabled": False},
                },
            ],
        },
    }


def _team_service(name: str, platform_namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "PlatformService",
        "metadata": {"name": name},
        "spec": {
            "name": name,
            "image": f"team/{name}:1",
            "replicas": 1,
            "autoscaling": {"enabled": False},
            "platformRef": {"name": "shop", "namespace": platform_namespace},
            **spec,
        },
    }


def _condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == ctype:
            return dict(cond)
    return {}


def _team_namespace(kube: Kube, stack: LocalStack, base: str, tenant: str | None) -> str:
    name = kube.namespace(f"{base}-{os.getpid() % 10000}-{uuid.uuid4().hex[:4]}")
    if tenant is not None:
        kube.run("label", "namespace", name, f"{TENANT_LABEL}={tenant}")
    stack.apply_kafka_secrets(name)  # the brokers' CA, which a team's pods read in their namespace
    return name


@pytest.fixture
def teams(kube: Kube, stack: LocalStack, namespace: str) -> Iterator[dict[str, str]]:
    tenant = "t" + uuid.uuid4().hex[:7]
    names = {
        "tenant": tenant,
        "a": _team_namespace(kube, stack, "team-a", tenant),
        "b": _team_namespace(kube, stack, "team-b", None),  # not labelled: refused
        "c": _team_namespace(kube, stack, "team-c", tenant),
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"}}
    kube.apply(namespace, {**secret, "stringData": {"uri": stack.postgres_admin_uri}})
    yield names
    for key in ("a", "b", "c"):
        kube.run("delete", "namespace", names[key], "--wait=false", check=False)


def _accepted(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kube.get("platformservice", name, namespace)
    ok = _condition(obj, "Accepted").get("status") == "True" and _condition(obj, "Ready").get("status") == "True"
    return obj if ok else None


def _platform_ready(kube: Kube, namespace: str) -> dict[str, Any] | None:
    msp = kube.get("msp", "shop", namespace) or {}
    status = msp.get("status") or {}
    ready = _condition(msp, "Ready")
    fresh = status.get("observedGeneration") == msp.get("metadata", {}).get("generation")
    return msp if fresh and ready.get("status") == "True" else None


def _owned_by(kube: Kube, namespace: str, uid: str) -> set[str]:
    found = set()
    for kind in ("deployments", "services", "configmaps", "serviceaccounts", "networkpolicies", "secrets"):
        for obj in kube.list(kind, namespace, selector="app.kubernetes.io/managed-by=keelson"):
            refs = obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid and r.get("controller") for r in refs):
                found.add(f"{obj['kind']}/{obj['metadata']['name']}")
    return found


def _pod(namespace: str, service: str) -> tuple[str, dict[str, str]]:
    return (namespace, {NAME_LABEL: service, PLATFORM_LABEL: "shop"})


def test_teams_attach_services_within_the_platforms_tenancy(
    kube: Kube, stack: LocalStack, namespace: str, teams: dict[str, str]
) -> None:
    a, b, c = teams["a"], teams["b"], teams["c"]
    kube.apply(namespace, _platform(stack, teams["tenant"]))
    eventually(lambda: _platform_ready(kube, namespace), timeout=120, what="the platform Ready")

    # team a: a service with its own database and topic, calling the platform's catalog;
    # team c: one calling team a's; team b's namespace is not selected by the tenancy.
    kube.apply(
        a,
        _team_service(
            "search",
            namespace,
            calls=["catalog"],
            publishes=["search.indexed"],
            database={"engine": "postgres"},
            expose={"path": "/api/search"},
        ),
    )
    kube.apply(c, _team_service("ranker", namespace, calls=["search"]))
    kube.apply(b, _team_service("reviews", namespace))

    search = eventually(lambda: _accepted(kube, a, "search"), timeout=120, what="search accepted and Ready")
    ranker = eventually(lambda: _accepted(kube, c, "ranker"), timeout=120, what="ranker accepted and Ready")
    assert search["status"]["url"] == f"http://search.{a}.svc:{PORT}"
    assert search["status"]["platform"] == f"{namespace}/shop"

    def refused() -> dict[str, Any] | None:
        obj = kube.get("platformservice", "reviews", b)
        return obj if _condition(obj, "Accepted").get("status") == "False" else None

    reviews = eventually(refused, timeout=60, what="reviews refused")
    accepted = _condition(reviews, "Accepted")
    assert accepted["reason"] == "NamespaceNotAllowed"
    assert (
        accepted["message"]
        == f"namespace {b} does not match spec.tenancy.namespaceSelector of platform {namespace}/shop"
    )
    assert _condition(reviews, "Ready")["reason"] == "NotAccepted"
    assert kube.list("deployments", b) == []

    # The team's objects are in its namespace, owned by its PlatformService: deleting it takes them.
    objects = _owned_by(kube, a, search["metadata"]["uid"])
    assert {
        "Deployment/search",
        "Service/search",
        "ConfigMap/search-config",
        "ServiceAccount/search",
        "NetworkPolicy/search",
        "NetworkPolicy/search.database",
        "Secret/shop-search-db",
    } <= objects, objects

    # Its topic is on the broker and its database on the server, as for the platform's own.
    msp = eventually(lambda: _platform_ready(kube, namespace), timeout=120, what="the platform Ready")
    topics = {t["name"]: t for t in msp["status"]["topics"]}
    assert topics[f"shop{teams['tenant']}.search.indexed"]["exists"] is True
    databases = {d["service"]: d for d in msp["status"]["databases"]}
    assert databases["search"]["ready"] is True
    assert {(e["name"], e["accepted"], e["reason"]) for e in msp["status"]["attached"]} == {
        ("search", True, "Attached"),
        ("ranker", True, "Attached"),
        ("reviews", False, "NamespaceNotAllowed"),
    }
    # The platform's readiness is its own services'; an attached service's is its PlatformService's.
    assert msp["status"]["readyServices"] == "2/2"

    # The gateway routes /api/search to the team's namespace.
    config = kube.get("configmap", "api-config", namespace) or {}
    routes = json.loads(config["data"]["KEELSON_ROUTES"])
    assert {"path": "/api/search", "service": "search", "url": f"http://search.{a}.svc:{PORT}"} in routes

    # A cross-namespace call works only where declared: evaluate what the API server stores.
    policies = [p for ns in (namespace, a, c) for p in kube.list("networkpolicies", ns)]
    api, catalog = _pod(namespace, "api"), _pod(namespace, "catalog")
    search_pod, ranker_pod = _pod(a, "search"), _pod(c, "ranker")
    assert connects(policies, ranker_pod, search_pod, PORT)  # ranker calls search
    assert connects(policies, search_pod, catalog, PORT)  # search calls catalog
    assert connects(policies, api, catalog, PORT)
    assert not connects(policies, search_pod, ranker_pod, PORT)  # not declared
    assert connects(policies, api, search_pod, PORT)  # the gateway routes to it (exposed)
    assert not connects(policies, catalog, search_pod, PORT)
    assert not connects(policies, ranker_pod, catalog, PORT)

    # Idle: with attached services in three namespaces, the operator writes nothing over two
    # resyncs (by the clock, and by its count of passes).
    since = idle_window(stack.ports["operator-metrics"])
    writes = [
        w
        for ns in (namespace, a, b, c)
        for w in operator_writes(stack.audit_log, since=since, namespace=ns)
        if w.get("objectRef", {}).get("resource") != "events"
    ]
    assert writes == [], [f"{w['verb']} {w['objectRef']}" for w in writes]

    # Deleting the team's service removes its objects; the platform stays Ready. ranker, which
    # calls it, is then refused, and nothing of it is left running either.
    kube.run("delete", "platformservice", "search", "-n", a)
    eventually(lambda: not _owned_by(kube, a, search["metadata"]["uid"]), timeout=60, what="search's objects gone")

    def ranker_refused() -> dict[str, Any] | None:
        obj = kube.get("platformservice", "ranker", c)
        return obj if _condition(obj, "Accepted").get("reason") == "InvalidService" else None

    refused_ranker = eventually(ranker_refused, timeout=60, what="ranker refused")
    assert "'search' is not a service of this platform" in _condition(refused_ranker, "Accepted")["message"]
    eventually(lambda: not _owned_by(kube, c, ranker["metadata"]["uid"]), timeout=60, what="ranker's objects pruned")
    msp = eventually(lambda: _platform_ready(kube, namespace), timeout=60, what="the platform still Ready")
    # Its data follows the platform's retention policy (Retain by default): kept, and said so.
    retained = {d["service"]: d for d in msp["status"].get("databases") or []}["search"]
    assert retained["message"].startswith("retained: database and role"), retained


def test_a_platformservice_naming_no_platform_is_refused(kube: Kube, stack: LocalStack, namespace: str) -> None:
    kube.apply(namespace, _team_service("lonely", namespace))

    def refused() -> dict[str, Any] | None:
        obj = kube.get("platformservice", "lonely", namespace)
        return obj if _condition(obj, "Accepted").get("reason") == "UnknownPlatform" else None

    obj = eventually(refused, timeout=60, what="lonely refused")
    assert _condition(obj, "Accepted")["message"] == f"MicroservicePlatform {namespace}/shop does not exist"
    assert kube.list("deployments", namespace) == []


def test_a_teams_component_lives_and_is_ready_in_its_namespace(
    kube: Kube, stack: LocalStack, namespace: str, teams: dict[str, str]
) -> None:
    a = teams["a"]
    type_ = f"cache{teams['tenant']}"
    definition = yaml.safe_load((EXAMPLES / "redis.yaml").read_text())
    definition["spec"]["type"] = type_
    definition["metadata"] = {"name": f"{type_}-v{definition['spec']['version']}"}
    kube.run("apply", "-f", "-", stdin=yaml.safe_dump(definition))
    try:
        platform = _platform(stack, teams["tenant"])
        platform["spec"]["tenancy"]["componentTypes"] = [type_]
        kube.apply(namespace, platform)
        cache = {"name": "cache", "type": f"{type_}@1"}
        kube.apply(a, _team_service("search", namespace, components=[cache]))
        # A type the tenancy does not list refuses the service alone.
        kube.apply(a, _team_service("other", namespace, components=[{"name": "cache", "type": "redis@1"}]))

        search = eventually(lambda: _accepted(kube, a, "search"), timeout=120, what="search accepted and Ready")
        owned = _owned_by(kube, a, search["metadata"]["uid"])
        assert {"Deployment/search-cache", "Service/search-cache", "NetworkPolicy/search-cache.component"} <= owned
        env = kube.get("deployment", "search", a)["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
        assert {"name": "REDIS_URL", "value": f"redis://search-cache.{a}.svc:6379/0"} in env

        def refused() -> dict[str, Any] | None:
            obj = kube.get("platformservice", "other", a)
            return obj if _condition(obj, "Accepted").get("reason") == "ComponentTypeNotAllowed" else None

        other = eventually(refused, timeout=60, what="other refused")
        assert "type redis is not in spec.tenancy.componentTypes" in _condition(other, "Accepted")["message"]
        assert kube.get("deployment", "other", a) is None
        msp = eventually(lambda: _platform_ready(kube, namespace), timeout=60, what="the platform Ready")
        assert not any(c["type"] == "ComponentsReady" for c in msp["status"]["conditions"])

        # The cache's pods admit the service, in the team's namespace, and nothing else.
        policies = [p for ns in (namespace, a) for p in kube.list("networkpolicies", ns)]
        cache_pod = (a, {PLATFORM_LABEL: "shop", "keelson.dev/component": "search-cache"})
        assert connects(policies, _pod(a, "search"), cache_pod, 6379)
        assert not connects(policies, _pod(namespace, "api"), cache_pod, 6379)
    finally:
        kube.run("delete", "platformservice", "--all", "-n", a, check=False)
        kube.run("delete", "msp", "shop", "-n", namespace, "--wait=true", check=False)
        kube.run("delete", "componentdefinition", definition["metadata"]["name"], check=False)
