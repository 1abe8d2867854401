"""Table tests of the renderers, one concern each, on the e-commerce example."""

import json
from typing import Any

import pytest

from keelson.render.labels import PLATFORM_LABEL
from tests.unit.render_helpers import context, objects

SERVICES = ["gateway", "users", "orders", "payments", "notifications"]
PER_SERVICE = [
    "ServiceAccount",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
]


def test_every_service_gets_its_objects() -> None:
    objs = objects(context())
    for svc in SERVICES:
        for kind in PER_SERVICE:
            assert (kind, svc) in objs, (kind, svc)
        assert ("ConfigMap", f"{svc}-config") in objs
    assert ("Ingress", "shop-gateway") in objs and ("NetworkPolicy", "shop.default-deny") in objs
    assert len(objs) == len(SERVICES) * 7 + 2


def test_labels_and_namespace() -> None:
    for obj in objects(context()).values():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "keelson"
        assert labels["app.kubernetes.io/part-of"] == "shop" and labels[PLATFORM_LABEL] == "shop"
        assert obj["metadata"]["namespace"] == "shop-ns"
        assert not any(k.startswith("argocd.argoproj.io") or k == "app.kubernetes.io/instance" for k in labels)


def test_deployment_is_restricted_and_probed() -> None:
    dep = objects(context())[("Deployment", "orders")]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "orders"
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    sc = container["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= container.keys()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"] == ["orders"] and container["image"] == "img:1"
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    assert container["envFrom"] == [{"configMapRef": {"name": "orders-config"}}]
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"


def test_replicas_belong_to_the_hpa_when_autoscaling() -> None:
    dep = objects(context())[("Deployment", "orders")]
    assert "replicas" not in dep["spec"]

    def off(spec):
        spec["services"][2]["autoscaling"] = {"enabled": False}
        spec["services"][2]["replicas"] = 3

    objs = objects(context(off))
    assert objs[("Deployment", "orders")]["spec"]["replicas"] == 3
    assert ("HorizontalPodAutoscaler", "orders") not in objs


def test_hpa_bounds_come_from_sizing() -> None:
    hpa = objects(context())[("HorizontalPodAutoscaler", "orders")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)  # 1M daily users, docs/sizing.md
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}


def test_custom_image_uses_tcp_probes() -> None:
    def custom(spec):
        del spec["services"][3]["reference"]
        spec["services"][3]["image"] = "registry.example/payments:2"

    container = objects(context(custom))[("Deployment", "payments")]["spec"]["template"]["spec"]["containers"][0]
    assert "args" not in container and container["image"] == "registry.example/payments:2"
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}


def test_config_map_carries_resilience_and_peers() -> None:
    data = objects(context())[("ConfigMap", "orders-config")]["data"]
    assert data["KEELSON_HTTP_TIMEOUT_SECONDS"] == "5"
    assert data["KEELSON_BREAKER_FAILURES"] == "3" and data["KEELSON_BREAKER_OPEN_SECONDS"] == "30"
    assert data["KEELSON_RETRY_BACKOFF_SECONDS"] == "1,2,4,8" and data["KEELSON_RETRY_MAX"] == "3"
    assert json.loads(data["KEELSON_SERVICE_URLS"]) == {"payments": "http://payments.shop-ns.svc:8080"}
    assert data["KEELSON_PUBLISHES"] == (
        "ecommerce.order.created,ecommerce.order.paid,ecommerce.order.cancelled,"
        "ecommerce.order.shipped,ecommerce.order.delivered"
    )
    assert data["KEELSON_SUBSCRIBES"] == "ecommerce.payment.completed,ecommerce.payment.failed,ecommerce.user.deleted"
    assert data["KEELSON_KAFKA_BOOTSTRAP"] == "kafka.kafka:9092"


def test_gateway_config_has_a_route_per_exposed_service() -> None:
    routes = json.loads(objects(context())[("ConfigMap", "gateway-config")]["data"]["KEELSON_ROUTES"])
    assert [r["path"] for r in routes] == ["/notifications", "/orders", "/users"]
    assert routes[1] == {"path": "/orders", "service": "orders", "url": "http://orders.shop-ns.svc:8080"}


def test_config_change_rolls_pods() -> None:
    before = objects(context())[("Deployment", "orders")]["spec"]["template"]["metadata"]["annotations"]

    def slower(spec):
        spec["services"][2]["resilience"] = {"timeoutSeconds": 9}

    after = objects(context(slower))[("Deployment", "orders")]["spec"]["template"]["metadata"]["annotations"]
    assert before["keelson.dev/config-checksum"] != after["keelson.dev/config-checksum"]


def test_pdb_never_blocks_a_drain() -> None:
    pdb = objects(context())[("PodDisruptionBudget", "users")]["spec"]
    assert pdb == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "users", PLATFORM_LABEL: "shop"}},
    }


def test_ingress_routes_only_the_public_api_to_the_gateway() -> None:
    ing = objects(context())[("Ingress", "shop-gateway")]["spec"]
    assert ing["ingressClassName"] == "nginx"
    assert ing["tls"] == [{"secretName": "shop-tls", "hosts": ["shop.example.com"]}]
    rule = ing["rules"][0]
    assert rule["host"] == "shop.example.com"
    assert rule["http"]["paths"] == [
        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "gateway", "port": {"number": 8080}}}}
    ]


def test_httproute() -> None:
    def httproute(spec):
        spec["gateway"]["routeKind"] = "HTTPRoute"
        spec["gateway"]["gatewayRef"] = {"name": "public", "namespace": "infra"}

    objs = objects(context(httproute))
    assert ("Ingress", "shop-gateway") not in objs
    route = objs[("HTTPRoute", "shop-gateway")]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "infra"}]
    assert route["spec"]["hostnames"] == ["shop.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "gateway", "port": 8080}]
    assert route["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/api"}}]


def test_no_gateway_no_route() -> None:
    def no_gateway(spec):
        del spec["gateway"]

    assert not any(k[0] in ("Ingress", "HTTPRoute") for k in objects(context(no_gateway)))


@pytest.mark.parametrize("namespace", ["shop-ns", "other"])
def test_service_ports(namespace: str) -> None:
    svc = objects(context(namespace=namespace))[("Service", "payments")]["spec"]
    assert svc["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
    ]
    assert svc["selector"] == {"app.kubernetes.io/name": "payments", PLATFORM_LABEL: "shop"}


def test_bounds_set_by_the_more_specific_level_win() -> None:
    # Found by tests/unit/test_generated_render.py: defaults.autoscaling.maxReplicas 1 under
    # Keelson's minReplicas 2 crashed the render (min > max).
    def low_default_max(spec: dict[str, Any]) -> None:
        spec.pop("dailyUsers", None)
        spec["defaults"]["autoscaling"] = {"maxReplicas": 1}
        spec["services"][1]["autoscaling"] = {"minReplicas": 4}

    objs = objects(context(low_default_max))
    assert objs[("HorizontalPodAutoscaler", "gateway")]["spec"]["minReplicas"] == 1
    assert objs[("HorizontalPodAutoscaler", "gateway")]["spec"]["maxReplicas"] == 1
    assert objs[("HorizontalPodAutoscaler", "users")]["spec"]["minReplicas"] == 4
    assert objs[("HorizontalPodAutoscaler", "users")]["spec"]["maxReplicas"] == 4


def test_a_request_above_an_inherited_limit_raises_the_limit() -> None:
    # Issue 9: requests.memory 1Gi under the built-in 256Mi limit could never be applied.
    def big_request(spec: dict[str, Any]) -> None:
        spec["defaults"].pop("resources", None)
        spec["services"][1]["resources"] = {"requests": {"memory": "1Gi"}}
        spec["services"][2]["resources"] = {"limits": {"memory": "100Mi", "cpu": "50m"}}

    objs = objects(context(big_request))
    users = objs[("Deployment", "users")]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert users == {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    orders = objs[("Deployment", "orders")]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert orders == {"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"memory": "100Mi", "cpu": "50m"}}


def _prefix_matches(prefix: str, path: str) -> bool:
    """Kubernetes' Prefix (and Gateway API's PathPrefix) match: element by element, so `/api`
    matches `/api` and `/api/v1` but not `/apis`."""
    wanted = [p for p in prefix.split("/") if p]
    return [p for p in path.split("/") if p][: len(wanted)] == wanted


@pytest.mark.parametrize("kind", ["Ingress", "HTTPRoute"])
def test_the_public_route_carries_the_api_and_nothing_internal(kind: str) -> None:
    def route_kind(spec):
        spec["gateway"]["routeKind"] = kind
        spec["gateway"]["gatewayRef"] = {"name": "public"}

    obj = objects(context(route_kind))[(kind, "shop-gateway")]["spec"]
    if kind == "Ingress":
        prefixes = [(p["pathType"], p["path"]) for rule in obj["rules"] for p in rule["http"]["paths"]]
    else:
        prefixes = [(m["path"]["type"], m["path"]["value"]) for rule in obj["rules"] for m in rule["matches"]]
    assert {kind for kind, _ in prefixes} <= {"Prefix", "PathPrefix"}

    def routed(path: str) -> bool:
        return any(_prefix_matches(prefix, path) for _, prefix in prefixes)

    for public in ("/api/v1/users", "/api/v1/auth/token", "/api/v1/orders/1"):
        assert routed(public), public
    internal_paths = ("/", "/metrics", "/readyz", "/healthz", "/docs", "/openapi.json", "/apis", "/.well-known/x")
    for internal in internal_paths:
        assert not routed(internal), internal


def test_the_gateway_believes_forwarded_for_only_from_the_proxies_of_its_route() -> None:
    def trusted(spec):
        spec["gateway"]["trustedProxies"] = ["10.42.0.0/16"]

    def none(spec):
        spec["gateway"]["trustedProxies"] = []

    def data(mutation=None):
        return objects(context(mutation))[("ConfigMap", "gateway-config")]["data"]

    derived = data()["KEELSON_GATEWAY_TRUSTED_PROXIES"]
    assert derived == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
    assert data(trusted)["KEELSON_GATEWAY_TRUSTED_PROXIES"] == "10.42.0.0/16"
    assert data(none)["KEELSON_GATEWAY_TRUSTED_PROXIES"] == ""
    # Only the gateway reads forwarded headers.
    assert "KEELSON_GATEWAY_TRUSTED_PROXIES" not in objects(context())[("ConfigMap", "users-config")]["data"]


def test_the_users_service_reads_its_key_encryption_key_from_its_database_secret() -> None:
    def env_of(service: str) -> dict[str, Any]:
        container = objects(context())[("Deployment", service)]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("valueFrom") for e in container.get("env", [])}

    ref = env_of("users")["KEELSON_KEY_ENCRYPTION_KEY"]["secretKeyRef"]
    assert ref == {"name": "shop-users-db", "key": "key-encryption-key", "optional": True}
    assert "KEELSON_KEY_ENCRYPTION_KEY" not in env_of("orders")  # only what a service seals needs one
