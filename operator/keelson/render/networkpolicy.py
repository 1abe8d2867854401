"""NetworkPolicies derived from the declared graph.

A platform-wide policy denies all ingress and egress to the platform's pods; each service then
gets one policy that allows exactly its declared edges: from its callers (and from the gateway
when exposed, from the ingress controller for the gateway itself, and from the Prometheus
namespace when the platform has a ServiceMonitor), to DNS, to the services it
calls, to Kafka when it has topics, to the OTLP receiver when the platform exports spans and, with
CloudNativePG, to its database cluster's pods, to its components' pods (render.components), and to
what it declares outside the platform (`spec.services[].egress`: an SMTP relay, an SMS provider).
Egress to any other database server depends on its address, which only the databases area knows
(from the admin or the user's Secret): it adds a policy `<service>.database` of its own
(`render.databases.render_database_egress`). Policies are additive, so nothing else talks to
anything.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from keelson.effective import EffectiveService
from keelson.render import cnpg
from keelson.render.components import component_egress, egress_rules
from keelson.render.context import RenderContext
from keelson.render.databases import provider
from keelson.render.labels import NAME_LABEL, PLATFORM_LABEL, metadata, selector_labels
from keelson.render.servicemonitor import prometheus_namespace, scraped

CNPG_CLUSTER_LABEL = "cnpg.io/cluster"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _peers(ctx: RenderContext, names: set[str], here: str) -> list[dict[str, Any]]:
    """The pods of these services, seen from a policy in namespace `here`: one peer per namespace
    they live in (an attached service lives in its team's, `keelson.tenancy`), with a namespace
    selector for any but `here`, since a bare pod selector means the policy's own namespace."""
    by_namespace: dict[str, list[str]] = {}
    for name in names:
        by_namespace.setdefault(ctx.namespace_of(name), []).append(name)
    peers = []
    for namespace, members in sorted(by_namespace.items(), key=lambda item: (item[0] != here, item[0])):
        peer: dict[str, Any] = {
            "podSelector": {
                "matchLabels": {PLATFORM_LABEL: ctx.name},
                "matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": sorted(members)}],
            }
        }
        if namespace != here:
            peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}
        peers.append(peer)
    return peers


def _tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _kafka_egress(bootstrap: str) -> list[dict[str, Any]]:
    """One rule per broker address. `svc.namespace[...]` hosts name a namespace we can select;
    other hosts live outside the cluster's pod network, so only the port can be constrained."""
    rules: list[dict[str, Any]] = []
    for address in sorted({a.strip() for a in bootstrap.split(",") if a.strip()}):
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            continue
        labels = host.split(".")
        rule: dict[str, Any] = {"ports": [_tcp(int(port))]}
        if len(labels) >= 2 and not host.replace(".", "").isdigit():
            rule["to"] = [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: labels[1]}}}]
        rules.append(rule)
    return rules


def _service_namespace(host: str, default: str) -> str | None:
    """The namespace of an in-cluster Service's DNS name (`name`, `name.namespace`,
    `name.namespace.svc[.cluster.local]`); None for an address or any other host, outside the
    cluster's pod network as far as we can tell."""
    labels = host.lower().split(".")
    if host.replace(".", "").isdigit():
        return None
    if len(labels) == 1:
        return default
    if len(labels) == 2 or labels[2] == "svc":
        return labels[1]
    return None


def _otlp_egress(ctx: RenderContext, endpoint: str) -> dict[str, Any]:
    """To the OTLP receiver's port: in its namespace for an in-cluster name, anywhere otherwise."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    rule: dict[str, Any] = {"ports": [_tcp(port)]}
    namespace = _service_namespace(url.hostname or "", ctx.namespace)
    if namespace is not None:
        rule["to"] = [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}]
    return rule


def _ingress_controller_namespace(ctx: RenderContext) -> str:
    gw = ctx.spec.gateway
    assert gw is not None
    if gw.ingressControllerNamespace:
        return gw.ingressControllerNamespace
    if gw.routeKind == "HTTPRoute" and gw.gatewayRef:
        return gw.gatewayRef.namespace or ctx.namespace
    return "ingress-nginx"


def _ingress(ctx: RenderContext, svc: EffectiveService) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    port = [_tcp(svc.port)]
    gateway = ctx.gateway_service
    sources = set(svc.callers)
    if gateway is not None and svc.expose_path and svc.name != gateway.name:
        sources.add(gateway.name)
    if sources:
        rules.append({"from": _peers(ctx, sources, ctx.namespace_of(svc.name)), "ports": port})
    if gateway is not None and svc.name == gateway.name:
        namespace = _ingress_controller_namespace(ctx)
        rules.append(
            {"from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}], "ports": port}
        )
    if scraped(ctx):
        # Prometheus scrapes /metrics on the service's one HTTP port.
        monitoring = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: prometheus_namespace(ctx)}}}
        rules.append({"from": [monitoring], "ports": port})
    return rules


def _egress(ctx: RenderContext, svc: EffectiveService) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
    ]
    here = ctx.namespace_of(svc.name)
    targets = set(svc.calls)
    gateway = ctx.gateway_service
    if gateway is not None and svc.name == gateway.name:
        targets |= {s.name for s in ctx.services if s.expose_path and s.name != svc.name}
    for name in sorted(targets):
        rules.append({"to": _peers(ctx, {name}, here), "ports": [_tcp(ctx.service(name).port)]})
    if ctx.kafka_bootstrap and (svc.publishes or svc.subscribes):
        rules.extend(_kafka_egress(ctx.kafka_bootstrap))
    if svc.has_database and provider(ctx) == "cloudnative-pg":
        pods: dict[str, Any] = {"podSelector": {"matchLabels": {CNPG_CLUSTER_LABEL: cnpg.cluster_name(ctx)}}}
        if here != ctx.namespace:  # the Cluster is the platform's
            pods["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: ctx.namespace}}
        rules.append({"to": [pods], "ports": [_tcp(cnpg.PORT)]})
    tracing = ctx.spec.observability.tracing if ctx.spec.observability else None
    if tracing is not None:
        rules.append(_otlp_egress(ctx, tracing.otlpEndpoint))
    rules.extend(component_egress(ctx, svc))
    rules.extend(egress_rules(svc.egress))  # declared outside connections (spec.services[].egress)
    return rules


def default_deny_name(ctx: RenderContext) -> str:
    # The dot keeps it apart from every service's own policy: a service name (DNS-1035) has none.
    return f"{ctx.name}.default-deny"


def render_default_deny(ctx: RenderContext) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, default_deny_name(ctx)),
        "spec": {"podSelector": {"matchLabels": {PLATFORM_LABEL: ctx.name}}, "policyTypes": ["Ingress", "Egress"]},
    }


def render_network_policy(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, svc.name, svc.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(ctx, svc.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": _ingress(ctx, svc),
            "egress": _egress(ctx, svc),
        },
    }
