"""Invalid platforms, shared by the unit tests (pydantic) and the cluster tests (CEL at admission),
so the two validators are held to the same cases. Each case: id, a change to the example spec,
and a fragment that the error message must contain (it names the field or the rule)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ecommerce.yaml"

Mutation = Callable[[dict[str, Any]], None]


def example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return doc


def workloads_example() -> dict[str, Any]:
    """The example without Kafka and databases: for tests of the Kubernetes side alone, which must
    not depend on (or wait for) a broker or a database server."""
    doc = example()
    spec = doc["spec"]
    spec.pop("kafka", None)
    spec.pop("databases", None)
    for svc in spec["services"]:
        svc.pop("database", None)
    return doc


def big_platform(services: int, name: str = "big", domain: str = "bench") -> dict[str, Any]:
    """A platform of `services` custom-image services calling each other in a ring: the shape of
    the scale tests and of bench/converge."""
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": name},
        "spec": {
            "domain": domain,
            "defaults": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}},
            "services": [
                {"name": f"svc-{i:03d}", "image": "registry.example/app:1", "calls": [f"svc-{(i + 1) % services:03d}"]}
                for i in range(services)
            ],
        },
    }


def _svc(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in spec["services"] if s["name"] == name)


def _duplicate(spec: dict[str, Any]) -> None:
    spec["services"].append(copy.deepcopy(_svc(spec, "orders")))


def _unknown_call(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["calls"] = ["payments", "shipping"]


def _self_call(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["calls"] = ["orders"]


def _both_reference_and_image(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["image"] = "registry.example/orders:1.0"


def _neither_reference_nor_image(spec: dict[str, Any]) -> None:
    del _svc(spec, "orders")["reference"]


def _bad_topic(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["publishes"] = ["Order_Created"]


def _bad_subscription(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["subscribes"] = ["a.b.c.d"]


def _min_over_max(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["autoscaling"] = {"minReplicas": 5, "maxReplicas": 2}


def _unknown_reference(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["reference"] = "shipping"


def _unknown_gateway(spec: dict[str, Any]) -> None:
    spec["gateway"]["service"] = "edge"


def _bad_trusted_proxy(spec: dict[str, Any]) -> None:
    spec["gateway"]["trustedProxies"] = ["10.0.0.0/8", "ingress-nginx"]


def _bad_egress_cidr(spec: dict[str, Any]) -> None:
    spec["services"][0]["egress"] = [{"cidr": "smtp.example.com", "ports": [{"port": 587}]}]


def _egress_cidr_with_host_bits(spec: dict[str, Any]) -> None:
    # NetworkPolicy refuses it ("must not have bits set beyond the prefix length"): so does admission.
    spec["services"][0]["egress"] = [{"cidr": "10.1.2.3/8", "ports": [{"port": 443}]}]


def _component_name_too_long(spec: dict[str, Any]) -> None:
    spec["services"][0]["name"] = "s" * 40
    spec["services"][0]["components"] = [{"name": "c" * 20, "type": "redis@1"}]


def _bad_component_pin(spec: dict[str, Any]) -> None:
    spec["services"][0]["components"] = [{"name": "cache", "type": "redis@1.2.3"}]


def _bad_domain(spec: dict[str, Any]) -> None:
    spec["domain"] = "E-Commerce"


def _bad_service_name(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["name"] = "Orders_Service"


def _tracing_endpoint_not_a_url(spec: dict[str, Any]) -> None:
    spec["observability"] = {"tracing": {"otlpEndpoint": "otel-collector.observability:4318"}}


def _tracing_ratio_over_one(spec: dict[str, Any]) -> None:
    spec["observability"] = {"tracing": {"otlpEndpoint": "http://otel-collector:4318", "sampleRatio": 1.5}}


def _metrics_bad_interval(spec: dict[str, Any]) -> None:
    spec["observability"] = {"metrics": {"serviceMonitor": True, "interval": "30 seconds"}}


def _metrics_reserved_label(spec: dict[str, Any]) -> None:
    spec["observability"] = {"metrics": {"serviceMonitor": True, "labels": {"keelson.dev/platform": "other"}}}


def _requests_over_limits(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["resources"] = {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}


def _unknown_resource(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["resources"] = {"limits": {"nvidia.com/gpu": 1}}


def _not_a_quantity(spec: dict[str, Any]) -> None:
    spec["defaults"] = {"resources": {"requests": {"cpu": "lots"}}}


def _negative_quantity(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["resources"] = {"requests": {"cpu": "-1"}}


def _env_value_and_value_from(spec: dict[str, Any]) -> None:
    ref = {"secretKeyRef": {"name": "s", "key": "k"}}
    _svc(spec, "orders")["env"] = [{"name": "A", "value": "x", "valueFrom": ref}]


def _env_source_empty(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["env"] = [{"name": "A", "valueFrom": {}}]


def _env_duplicate(spec: dict[str, Any]) -> None:
    _svc(spec, "orders")["env"] = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]


def _host_is_an_ip(spec: dict[str, Any]) -> None:
    spec["gateway"]["host"] = "10.0.0.1"


def _host_not_a_dns_name(spec: dict[str, Any]) -> None:
    spec["gateway"]["host"] = "Shop.Example"


def _topic_segment_ends_with_a_dash(spec: dict[str, Any]) -> None:
    # Found by the generated platforms: `order.created-` made a KafkaTopic name the API refuses.
    _svc(spec, "orders")["publishes"] = ["order.created-"]


def _topic_too_long_for_kafka(spec: dict[str, Any]) -> None:
    # <topic>.<service>.retry-<n> must fit Kafka's 249 characters.
    _svc(spec, "orders")["publishes"] = ["o" * 60 + "." + "c" * 60]


def on_doc(mutation: Callable[[dict[str, Any]], None]) -> Mutation:
    """A case that changes the whole object (its name), not only the spec."""
    mutation.on_doc = True  # type: ignore[attr-defined]
    return mutation


@on_doc
def _name_too_long(doc: dict[str, Any]) -> None:
    doc["metadata"]["name"] = "p" * 64


@on_doc
def _name_too_long_for_cnpg(doc: dict[str, Any]) -> None:
    doc["metadata"]["name"] = "p" * 48
    doc["spec"]["databases"] = {"provider": "cloudnative-pg"}


def _tenancy_bad_label_key(spec: dict[str, Any]) -> None:
    spec["tenancy"] = {"namespaceSelector": {"matchLabels": {"team name": "a"}}}


def _tenancy_in_without_values(spec: dict[str, Any]) -> None:
    spec["tenancy"] = {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}


def _tenancy_exists_with_values(spec: dict[str, Any]) -> None:
    expression = {"key": "team", "operator": "Exists", "values": ["a"]}
    spec["tenancy"] = {"namespaceSelector": {"matchExpressions": [expression]}}


INVALID: list[tuple[str, Mutation, str]] = [
    ("duplicate-service", _duplicate, "duplicate"),
    ("unknown-call", _unknown_call, "calls"),
    ("self-call", _self_call, "must not call itself"),
    ("reference-and-image", _both_reference_and_image, "exactly one of reference or image"),
    ("neither-reference-nor-image", _neither_reference_nor_image, "exactly one of reference or image"),
    ("bad-topic", _bad_topic, "publishes"),
    ("bad-subscription", _bad_subscription, "subscribes"),
    ("min-over-max", _min_over_max, "minReplicas must not be greater than maxReplicas"),
    ("unknown-reference", _unknown_reference, "reference"),
    ("unknown-gateway-service", _unknown_gateway, "gateway.service"),
    ("bad-trusted-proxy", _bad_trusted_proxy, "CIDR"),
    ("bad-egress-cidr", _bad_egress_cidr, "CIDR"),
    ("egress-cidr-with-host-bits", _egress_cidr_with_host_bits, "CIDR"),
    ("component-name-too-long", _component_name_too_long, "<service>-<component>"),
    ("bad-component-pin", _bad_component_pin, "type"),
    ("bad-domain", _bad_domain, "domain"),
    ("bad-service-name", _bad_service_name, "name"),
    ("tracing-endpoint-not-a-url", _tracing_endpoint_not_a_url, "otlpEndpoint"),
    ("tracing-ratio-over-one", _tracing_ratio_over_one, "sampleRatio"),
    ("metrics-bad-interval", _metrics_bad_interval, "interval"),
    ("metrics-reserved-label", _metrics_reserved_label, "Keelson's own labels"),
    ("requests-over-limits", _requests_over_limits, "requests must not exceed limits"),
    ("unknown-resource", _unknown_resource, "resource names are"),
    # The API server's message is the schema pattern's: it names the field, not the rule.
    ("not-a-quantity", _not_a_quantity, "cpu"),
    ("negative-quantity", _negative_quantity, "cpu"),
    ("env-value-and-value-from", _env_value_and_value_from, "value and valueFrom must not both be set"),
    ("env-source-empty", _env_source_empty, "exactly one of secretKeyRef or configMapKeyRef"),
    ("env-duplicate", _env_duplicate, "env"),
    ("host-is-an-ip", _host_is_an_ip, "IP address"),
    ("host-not-a-dns-name", _host_not_a_dns_name, "host"),
    ("topic-segment-ends-with-a-dash", _topic_segment_ends_with_a_dash, "publishes"),
    ("topic-too-long-for-kafka", _topic_too_long_for_kafka, "publishes"),
    ("tenancy-bad-label-key", _tenancy_bad_label_key, "label key"),
    ("tenancy-in-without-values", _tenancy_in_without_values, "values must be non-empty"),
    ("tenancy-exists-with-values", _tenancy_exists_with_values, "values must be non-empty"),
    ("name-too-long", _name_too_long, "at most 63 characters"),
    ("name-too-long-for-cnpg", _name_too_long_for_cnpg, "at most 47 characters"),
]


def invalid_platform(mutation: Mutation, name: str | None = None) -> dict[str, Any]:
    """The example with one mistake; `name` renames it unless the case is about the name."""
    doc = example()
    if name:
        doc["metadata"]["name"] = name
    if getattr(mutation, "on_doc", False):
        mutation(doc)
    else:
        mutation(doc["spec"])
    return doc
