"""Hypothesis strategies for `MicroservicePlatform` objects across the valid CRD space.

The claims "any valid platform converges" and "zero idle writes" are only as good as the inputs
they were tried on, so these strategies reach the shapes the examples never have: isolated
services, services nobody calls, chains, fan-in and fan-out; autoscaling on and off, replicas from
0; empty strings and lists, odd quantities (`0.5`, `1024Mi`, `512M`, nano units), env literals and
`valueFrom`, ports from 1 to 65535, names at their length limits; Ingress and HTTPRoute; tracing
and metrics; Kafka `none`, `admin` and `strimzi`; every database provider.

`Target` says which of those a run can back with real components (the local stack has one Kafka
broker, so a replication factor above 1 can never be met; CloudNativePG has no operator there),
so the cluster tests draw only platforms that can reach Ready on it, while the render and
admission tests draw from everything.
"""

from __future__ import annotations

import copy
import dataclasses
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from keelson.api.v1alpha1 import CNPG_NAME_ROOM, MAX_PLATFORM_NAME

REFERENCES = ("gateway", "users", "orders", "payments", "notifications")
# Quantities as people write them, and as the API server rewrites them.
CPU = ("0", "1m", "100m", "0.5", "1", 1, "2", "250m", "1.5", "0.0001", "100n", "1e-3")
MEMORY = ("0", "64Mi", "128Mi", "256Mi", "512M", "1024Mi", "1Gi", "1G", "1.5Gi", "100000", 134217728, "0.5")
STORAGE = ("1Gi", "500M", "10Gi")
IMAGES = ("registry.example/app:1", "x", "r.example:5000/a/b@sha256:" + "0" * 64)


@dataclass(frozen=True)
class Target:
    """What the platforms must fit to run somewhere."""

    max_services: int = 30
    kafka_providers: tuple[str, ...] = ("none", "admin", "strimzi")
    database_providers: tuple[str, ...] = ("postgres", "external", "cloudnative-pg")
    kafka_bootstrap: str = "kafka.kafka:9092"
    # More spec.kafka fields for providers admin and strimzi (a secured broker's tls, authentication).
    kafka_security: Mapping[str, Any] = field(default_factory=dict)
    max_replication_factor: int = 3
    postgres_admin_secret: str = "pg-admin"
    # Secrets the `external` database provider and env `valueFrom` may point at.
    external_secret: str = "ext-db"
    daily_users: tuple[int, ...] = (1, 10_000, 1_000_000, 10_000_000)


def _dns_label(max_size: int, first: str = string.ascii_lowercase) -> st.SearchStrategy[str]:
    middle = string.ascii_lowercase + string.digits + "-"
    end = string.ascii_lowercase + string.digits
    return st.one_of(
        st.builds(lambda a: a, st.sampled_from(first)),
        st.builds(
            lambda a, m, z: a + m + z,
            st.sampled_from(first),
            st.text(middle, max_size=max(0, max_size - 2)),
            st.sampled_from(end),
        ),
    )


def platform_names(max_size: int = MAX_PLATFORM_NAME) -> st.SearchStrategy[str]:
    """Mostly short names, sometimes right at the limit (a label value on every child)."""
    return st.one_of(
        _dns_label(12),
        st.builds(lambda s: (s * max_size)[:max_size].rstrip("-") or "p", _dns_label(8)),
    )


def service_names() -> st.SearchStrategy[str]:
    return st.one_of(_dns_label(10), st.just("s" + "x" * 62), _dns_label(63))


segment = st.from_regex(r"\A[a-z]([a-z0-9-]{0,9}[a-z0-9])?\Z")
events = st.builds(lambda e, a: f"{e}.{a}", segment, segment)


def _quantity(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    """requests <= limits within one level (admission enforces it); across levels anything goes."""
    from kubernetes.utils import parse_quantity

    out: dict[str, Any] = {}
    for key, values in (("cpu", CPU), ("memory", MEMORY), ("ephemeral-storage", STORAGE)):
        choice = draw(st.sampled_from(("none", "request", "limit", "both")))
        if choice in ("request", "both"):
            out.setdefault("requests", {})[key] = draw(_quantity(values))
        if choice in ("limit", "both"):
            floor = parse_quantity(out.get("requests", {}).get(key, 0))
            fitting = tuple(v for v in values if parse_quantity(v) >= floor)
            out.setdefault("limits", {})[key] = draw(_quantity(fitting))
    return out


@st.composite
def autoscaling(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["enabled"] = draw(st.booleans())
    low = draw(st.none() | st.integers(1, 4))
    high = draw(st.none() | st.integers(low or 1, 6))
    if low is not None:
        out["minReplicas"] = low
    if high is not None:
        out["maxReplicas"] = high
    if draw(st.booleans()):
        out["targetCPUUtilizationPercentage"] = draw(st.sampled_from((1, 50, 70, 100)))
    return out


@st.composite
def env_vars(draw: st.DrawFn, target: Target) -> list[dict[str, Any]]:
    names = draw(
        st.lists(
            st.sampled_from(("A", "EMPTY", "LOG_LEVEL", "KEELSON_DATABASE_URI", "x.y", "_Z", "-dash", "FROM_SECRET")),
            unique=True,
            max_size=5,
        )
    )
    out = []
    for name in names:
        kind = draw(st.sampled_from(("empty", "literal", "secret", "configmap", "nothing")))
        var: dict[str, Any] = {"name": name}
        if kind == "empty":
            var["value"] = ""
        elif kind == "literal":
            var["value"] = draw(st.sampled_from(("1", "debug", " spaced ", "ünïcode", "a=b", "0")))
        elif kind in ("secret", "configmap"):
            ref: dict[str, Any] = {"name": target.external_secret, "key": draw(st.sampled_from(("uri", "k.e-y_1")))}
            if draw(st.booleans()):
                ref["optional"] = True
            var["valueFrom"] = {"secretKeyRef" if kind == "secret" else "configMapKeyRef": ref}
        out.append(var)
    return out


# Canonical CIDRs of both families and every prefix shape, as NetworkPolicy takes them.
CIDRS = ("0.0.0.0/0", "203.0.113.25/32", "10.0.0.0/8", "192.168.128.0/17", "2001:db8::/32", "::/0", "fd00::1/128")


@st.composite
def egress(draw: st.DrawFn) -> list[dict[str, Any]]:
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        rule: dict[str, Any] = {
            "ports": [{"port": draw(st.sampled_from((25, 443, 587, 65535)) | st.integers(1, 65535))}]
        }
        if draw(st.booleans()):
            rule["ports"][0]["protocol"] = draw(st.sampled_from(("TCP", "UDP")))
        if draw(st.booleans()):
            rule["cidr"] = draw(st.sampled_from(CIDRS))
        rules.append(rule)
    return rules


@st.composite
def services(draw: st.DrawFn, target: Target, database_provider: str, with_kafka: bool) -> list[dict[str, Any]]:
    names = draw(st.lists(service_names(), min_size=1, max_size=target.max_services, unique=True))
    out = []
    for name in names:
        svc: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            svc["reference"] = draw(st.sampled_from(REFERENCES))
        else:
            svc["image"] = draw(
                st.sampled_from(("registry.example/app:1", "x", "r.example:5000/a/b@sha256:" + "0" * 64))
            )
        if draw(st.booleans()):
            svc["port"] = draw(st.sampled_from((1, 80, 8080, 9090, 65535)) | st.integers(1, 65535))
        if draw(st.booleans()):
            svc["replicas"] = draw(st.integers(0, 3))
        if draw(st.booleans()):
            svc["autoscaling"] = draw(autoscaling())
        if draw(st.booleans()):
            svc["resources"] = draw(resources())
        others = [n for n in names if n != name]
        if others and draw(st.booleans()):
            svc["calls"] = draw(st.lists(st.sampled_from(others), unique=True, max_size=min(4, len(others))))
        if with_kafka and draw(st.booleans()):
            svc["publishes"] = draw(st.lists(events, unique=True, max_size=2))
        if with_kafka and draw(st.booleans()):
            svc["subscribes"] = draw(st.lists(events, unique=True, max_size=2))
        if draw(st.booleans()):
            svc["expose"] = {"path": draw(st.sampled_from(("/", "/api", "/a/b_c.d-e", f"/{name}")))}
        if draw(st.integers(0, 3)) == 0:
            svc["database"] = {"engine": "postgres"}
            if database_provider == "external":
                svc["database"]["secretRef"] = {"name": target.external_secret}
        if draw(st.booleans()):
            svc["env"] = draw(env_vars(target))
        if draw(st.integers(0, 3)) == 0:
            svc["egress"] = draw(egress())
        out.append(svc)
    return out


@st.composite
def platforms(draw: st.DrawFn, target: Target | None = None, name: str | None = None) -> dict[str, Any]:
    """A whole valid `MicroservicePlatform` object (a plain dict, as `kubectl apply` takes it)."""
    target = target or Target()
    kafka_provider = draw(st.sampled_from(target.kafka_providers))
    database_provider = draw(st.sampled_from(target.database_providers))
    chosen_name = name or draw(
        platform_names(CNPG_NAME_ROOM if database_provider == "cloudnative-pg" else MAX_PLATFORM_NAME)
    )
    svcs = draw(services(target, database_provider, with_kafka=kafka_provider != "none" or draw(st.booleans())))
    spec: dict[str, Any] = {"domain": draw(segment), "services": svcs}
    if draw(st.booleans()):
        spec["dailyUsers"] = draw(st.sampled_from(target.daily_users))
    defaults: dict[str, Any] = {}
    if draw(st.booleans()):
        defaults["autoscaling"] = draw(autoscaling())
    if draw(st.booleans()):
        defaults["resources"] = draw(resources())
    if draw(st.booleans()):
        defaults["resilience"] = {
            "timeoutSeconds": draw(st.sampled_from((0.5, 5, 300))),
            "circuitBreaker": {"consecutiveFailures": draw(st.integers(1, 5))},
            "retry": {"backoffSeconds": draw(st.lists(st.integers(0, 8), min_size=1, max_size=4))},
        }
    if defaults:
        spec["defaults"] = defaults
    kafka: dict[str, Any] = {"provider": kafka_provider}
    if kafka_provider != "none" or draw(st.booleans()):
        kafka["bootstrapServers"] = target.kafka_bootstrap
    if kafka_provider != "none":
        kafka.update(copy.deepcopy(dict(target.kafka_security)))
    if kafka_provider == "strimzi":
        kafka["strimziCluster"] = draw(_dns_label(20))
    if draw(st.booleans()):
        kafka["partitions"] = draw(st.integers(1, 3))
    kafka["replicationFactor"] = draw(st.integers(1, target.max_replication_factor))
    if draw(st.booleans()):
        kafka["deletionPolicy"] = draw(st.sampled_from(("Retain", "Delete")))
    spec["kafka"] = kafka
    databases: dict[str, Any] = {"provider": database_provider}
    if database_provider == "postgres":
        databases["adminSecretRef"] = {"name": target.postgres_admin_secret}
    if database_provider == "cloudnative-pg" and draw(st.booleans()):
        databases["instances"] = draw(st.integers(1, 3))
        databases["storageSize"] = draw(st.sampled_from(("1Gi", "500M")))
    if draw(st.booleans()):
        databases["deletionPolicy"] = draw(st.sampled_from(("Retain", "Delete")))
    spec["databases"] = databases
    if draw(st.booleans()):
        gateway_svc = draw(st.sampled_from([s["name"] for s in svcs]))
        gateway: dict[str, Any] = {"service": gateway_svc}
        kind = draw(st.sampled_from(("Ingress", "HTTPRoute")))
        gateway["routeKind"] = kind
        if draw(st.booleans()):
            gateway["host"] = draw(st.sampled_from(("shop.example.com", "*.example.org", "a")))
        if kind == "HTTPRoute":
            ref: dict[str, Any] = {"name": "public"}
            if draw(st.booleans()):
                ref["namespace"] = "gateways"
            if draw(st.booleans()):
                ref["sectionName"] = "https"
            gateway["gatewayRef"] = ref
        else:
            if draw(st.booleans()):
                gateway["ingressClassName"] = "nginx"
            if draw(st.booleans()):
                gateway["tlsSecretName"] = "shop-tls"
        if draw(st.booleans()):
            gateway["ingressControllerNamespace"] = "edge"
        spec["gateway"] = gateway
    observability: dict[str, Any] = {}
    if draw(st.booleans()):
        tracing: dict[str, Any] = {
            "otlpEndpoint": draw(
                st.sampled_from(
                    ("http://otel-collector.observability:4318", "https://10.1.2.3", "http://jaeger:4318/x")
                )
            )
        }
        if draw(st.booleans()):
            tracing["sampleRatio"] = draw(st.sampled_from((0, 0.25, 1)))
        observability["tracing"] = tracing
    if draw(st.booleans()):
        metrics: dict[str, Any] = {
            "serviceMonitor": draw(st.booleans()),
            "alerts": draw(st.booleans()),
            "dashboards": draw(st.booleans()),
        }
        if draw(st.booleans()):
            metrics["interval"] = draw(st.sampled_from(("15s", "1m30s")))
        if draw(st.booleans()):
            metrics["labels"] = {"release": "kube-prometheus-stack", "example.com/team": ""}
        observability["metrics"] = metrics
    if observability:
        spec["observability"] = observability
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": chosen_name},
        "spec": spec,
    }


@st.composite
def team_services(
    draw: st.DrawFn, platform: dict[str, Any], namespaces: list[str], target: Target | None = None
) -> list[dict[str, Any]]:
    """PlatformServices (plain dicts, without their namespace in metadata: `namespace` is a key of
    their own) a platform with `tenancy: {namespaceSelector: {}, expose: true, subscribe: true}`
    accepts: drawn like a platform's services, with names apart from the platform's, the team's own
    image, and calls among themselves or to the platform's services."""
    target = target or Target()
    spec = platform["spec"]
    provider = (spec.get("databases") or {}).get("provider", "postgres")
    with_kafka = (spec.get("kafka") or {}).get("provider", "none") != "none"
    small = dataclasses.replace(target, max_services=4)
    drawn = draw(services(small, provider, with_kafka=with_kafka))
    taken = {s["name"] for s in spec["services"]}
    renamed = {s["name"]: f"t-{s['name']}"[:63].rstrip("-") for s in drawn}
    if len(set(renamed.values())) != len(renamed) or taken & set(renamed.values()):
        renamed = {old: f"t{i}" for i, old in enumerate(renamed)}
    out = []
    for original in drawn:
        svc = {**original, "name": renamed[original["name"]]}
        svc.pop("reference", None)
        svc["image"] = "team.example/app:1"
        calls = [renamed[c] for c in svc.get("calls") or []]
        if draw(st.booleans()):
            calls.append(draw(st.sampled_from(sorted(taken))))
        if calls:
            svc["calls"] = sorted(set(calls))
        svc["platformRef"] = {"name": platform["metadata"]["name"]}
        out.append(
            {
                "apiVersion": "keelson.dev/v1alpha1",
                "kind": "PlatformService",
                "metadata": {"name": svc["name"]},
                "namespace": draw(st.sampled_from(namespaces)),
                "spec": svc,
            }
        )
    return out
