"""`spec.observability.tracing`: the OpenTelemetry variables in each service's ConfigMap, and egress
to the OTLP receiver in its NetworkPolicy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from keelson.api.v1alpha1 import MicroservicePlatform
from tests.cases.invalid_platforms import example
from tests.unit.render_helpers import context, objects

COLLECTOR = "http://otel-collector.observability:4318"


def tracing(endpoint: str = COLLECTOR, ratio: float | None = None) -> Any:
    def mutate(spec: dict[str, Any]) -> None:
        spec["observability"] = {"tracing": {"otlpEndpoint": endpoint}}
        if ratio is not None:
            spec["observability"]["tracing"]["sampleRatio"] = ratio

    return mutate


def config(objs: dict[tuple[str, str], dict[str, Any]], service: str) -> dict[str, str]:
    data: dict[str, str] = objs[("ConfigMap", f"{service}-config")]["data"]
    return data


def egress(objs: dict[tuple[str, str], dict[str, Any]], service: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = objs[("NetworkPolicy", service)]["spec"]["egress"]
    return rules


def test_without_tracing_no_otel_variables_and_no_collector_egress() -> None:
    objs = objects(context())
    assert not any(key.startswith("OTEL_") for key in config(objs, "orders"))
    assert not any(p.get("port") == 4318 for rule in egress(objs, "orders") for p in rule.get("ports", []))


def test_each_service_exports_under_its_own_name() -> None:
    objs = objects(context(tracing(ratio=0.25)))
    for service in ("gateway", "users", "orders", "payments", "notifications"):
        data = config(objs, service)
        assert {k: v for k, v in data.items() if k.startswith("OTEL_")} == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": service,
            "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,k8s.namespace.name=shop-ns",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }


def test_no_ratio_no_sampler_and_a_changed_endpoint_rolls_the_pods() -> None:
    data = config(objects(context(tracing())), "orders")
    assert "OTEL_TRACES_SAMPLER" not in data and "OTEL_TRACES_SAMPLER_ARG" not in data

    def checksum(ctx: Any) -> str:
        deployment = objects(ctx)[("Deployment", "orders")]
        annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["keelson.dev/config-checksum"]

    assert checksum(context(tracing())) != checksum(context(tracing("http://tempo.tracing:4318")))


@pytest.mark.parametrize(
    ("endpoint", "rule"),
    [
        (  # name.namespace: that namespace, that port
            COLLECTOR,
            {
                "ports": [{"protocol": "TCP", "port": 4318}],
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
            },
        ),
        (  # the full in-cluster name
            "http://jaeger-collector.tracing.svc.cluster.local:4318",
            {
                "ports": [{"protocol": "TCP", "port": 4318}],
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tracing"}}}],
            },
        ),
        (  # a bare name is a Service of the platform's own namespace
            "http://otel-collector:4318",
            {
                "ports": [{"protocol": "TCP", "port": 4318}],
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop-ns"}}}],
            },
        ),
        # outside the cluster: only the port (the scheme's default when the URL names none)
        ("https://otlp.vendor.example.com/otlp", {"ports": [{"protocol": "TCP", "port": 443}]}),
        ("http://10.20.30.40:4318", {"ports": [{"protocol": "TCP", "port": 4318}]}),
    ],
)
def test_egress_to_the_collector_is_allowed_from_every_service(endpoint: str, rule: dict[str, Any]) -> None:
    objs = objects(context(tracing(endpoint)))
    for service in ("gateway", "users", "orders", "payments", "notifications"):
        assert rule in egress(objs, service), service


def test_a_valid_tracing_section_is_accepted() -> None:
    doc = example()
    tracing(ratio=0)(doc["spec"])
    spec = MicroservicePlatform.from_object(doc).spec
    assert spec.observability is not None and spec.observability.tracing is not None
    assert spec.observability.tracing.sampleRatio == 0


@pytest.mark.parametrize(
    "endpoint",
    ["otel-collector:4318", "grpc://otel-collector:4317", "http://otel-collector:70000", "http://a b:4318", ""],
)
def test_an_endpoint_that_is_not_an_http_url_is_refused(endpoint: str) -> None:
    doc = example()
    tracing(endpoint)(doc["spec"])
    with pytest.raises(ValidationError, match="otlpEndpoint"):
        MicroservicePlatform.from_object(doc)


def test_tracing_needs_an_endpoint() -> None:
    doc = example()
    doc["spec"]["observability"] = {"tracing": {"sampleRatio": 0.5}}
    with pytest.raises(ValidationError, match="otlpEndpoint"):
        MicroservicePlatform.from_object(doc)
