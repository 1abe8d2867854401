"""ConfigMap per service: everything a service needs to find and treat its peers.

The services read these keys as environment variables (the Deployment mounts the ConfigMap with
`envFrom`), so resilience settings come from the platform spec, never from constants in code.
With `spec.observability.tracing`, the standard OpenTelemetry variables too (`OTEL_*`), which the
reference services and any OpenTelemetry SDK in a custom image read alike.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from keelson.effective import EffectiveService
from keelson.render.callers import caller_env
from keelson.render.context import RenderContext
from keelson.render.kafkausers import security_config
from keelson.render.labels import config_map_name, metadata

# Where the proxy in front of the gateway runs when the spec does not say: in the cluster, on a
# pod or node address, which are private. The gateway's NetworkPolicy admits from outside the
# platform only the ingress controller's (or the Gateway's) namespace.
CLUSTER_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")


def trusted_proxies(ctx: RenderContext) -> list[str]:
    """The proxies whose X-Forwarded-For the gateway believes (`gateway/forwarded.py`): the
    spec's, else those the platform's route puts in front of it."""
    gw = ctx.spec.gateway
    if gw is not None and gw.trustedProxies is not None:
        return list(gw.trustedProxies)
    return list(CLUSTER_NETWORKS)


def config_data(ctx: RenderContext, svc: EffectiveService) -> dict[str, str]:
    res = svc.resilience
    data = {
        "KEELSON_PLATFORM": ctx.name,
        "KEELSON_NAMESPACE": ctx.namespace_of(svc.name),
        "KEELSON_DOMAIN": ctx.spec.domain,
        "KEELSON_SERVICE": svc.name,
        "KEELSON_PORT": str(svc.port),
        "KEELSON_HTTP_TIMEOUT_SECONDS": f"{res.timeout_seconds:g}",
        "KEELSON_BREAKER_FAILURES": str(res.breaker_failures),
        "KEELSON_BREAKER_OPEN_SECONDS": str(res.breaker_open_seconds),
        "KEELSON_RETRY_BACKOFF_SECONDS": ",".join(str(s) for s in res.backoff_seconds),
        "KEELSON_RETRY_MAX": str(res.max_retries),
        "KEELSON_SERVICE_URLS": json.dumps({c: ctx.service_url(c) for c in svc.calls}, sort_keys=True),
        "KEELSON_PUBLISHES": ",".join(svc.publishes),
        "KEELSON_SUBSCRIBES": ",".join(svc.subscribes),
    }
    if ctx.kafka_bootstrap and (svc.publishes or svc.subscribes):
        data["KEELSON_KAFKA_BOOTSTRAP"] = ctx.kafka_bootstrap
        data.update(security_config(ctx))
    gateway = ctx.gateway_service
    if gateway is not None and gateway.name == svc.name:
        routes = [
            {"path": s.expose_path, "service": s.name, "url": ctx.service_url(s.name)}
            for s in ctx.services
            if s.expose_path and s.name != svc.name
        ]
        data["KEELSON_ROUTES"] = json.dumps(sorted(routes, key=lambda r: r["path"]))
        data["KEELSON_GATEWAY_TRUSTED_PROXIES"] = ",".join(trusted_proxies(ctx))
    data.update(caller_env(ctx, svc))
    data.update(tracing_env(ctx, svc))
    return data


def tracing_env(ctx: RenderContext, svc: EffectiveService) -> dict[str, str]:
    """The OpenTelemetry SDK variables of a service of a platform that exports spans."""
    tracing = ctx.spec.observability.tracing if ctx.spec.observability else None
    if tracing is None:
        return {}
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": tracing.otlpEndpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": svc.name,
        "OTEL_RESOURCE_ATTRIBUTES": f"service.namespace={ctx.name},k8s.namespace.name={ctx.namespace_of(svc.name)}",
    }
    if tracing.sampleRatio is not None:
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = f"{tracing.sampleRatio:g}"
    return env


def config_checksum(data: dict[str, str]) -> str:
    """Put on the pod template so that a changed ConfigMap rolls the pods that read it."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def render_config_map(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, config_map_name(svc.name), svc.name),
        "data": config_data(ctx, svc),
    }
