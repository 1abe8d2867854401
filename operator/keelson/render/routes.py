"""The public route: an Ingress or a Gateway API HTTPRoute to the API gateway's Service only.

Every public request reaches the gateway and passes its authentication; the other services are
never routed to directly. Per-path routing to them lives in the gateway's ConfigMap.

Only the public API is routed: paths under `PUBLIC_PATH` (`/api`, a Prefix match by path element,
so `/api/v1/...` but not `/apis`). The gateway's own operational paths (`/metrics`, `/readyz`,
`/healthz`, `/docs`, `/openapi.json`) answer only inside the cluster: the kubelet's probes and
the Prometheus scrape reach the pod directly, not through the route.
"""

from __future__ import annotations

from typing import Any

from keelson.render.context import RenderContext
from keelson.render.labels import metadata

PUBLIC_PATH = "/api"


def route_name(ctx: RenderContext) -> str:
    return f"{ctx.name}-gateway"


def render_route(ctx: RenderContext) -> dict[str, Any] | None:
    gw = ctx.spec.gateway
    gateway = ctx.gateway_service
    if gw is None or gateway is None:
        return None
    meta = metadata(ctx, route_name(ctx), gateway.name)
    if gw.routeKind == "HTTPRoute":
        assert gw.gatewayRef is not None
        parent: dict[str, Any] = {"name": gw.gatewayRef.name}
        if gw.gatewayRef.namespace:
            parent["namespace"] = gw.gatewayRef.namespace
        if gw.gatewayRef.sectionName:
            parent["sectionName"] = gw.gatewayRef.sectionName
        spec: dict[str, Any] = {
            "parentRefs": [parent],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": PUBLIC_PATH}}],
                    "backendRefs": [{"name": gateway.name, "port": gateway.port}],
                }
            ],
        }
        if gw.host:
            spec["hostnames"] = [gw.host]
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta, "spec": spec}
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": PUBLIC_PATH,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": gateway.name, "port": {"number": gateway.port}}},
                }
            ]
        }
    }
    if gw.host:
        rule["host"] = gw.host
    ingress: dict[str, Any] = {"rules": [rule]}
    if gw.ingressClassName:
        ingress["ingressClassName"] = gw.ingressClassName
    if gw.tlsSecretName:
        tls: dict[str, Any] = {"secretName": gw.tlsSecretName}
        if gw.host:
            tls["hosts"] = [gw.host]
        ingress["tls"] = [tls]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": ingress}
