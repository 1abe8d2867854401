"""NetworkPolicies follow the declared graph exactly."""

from typing import Any

from tests.unit.render_helpers import context, objects


def _sources(policy: dict[str, Any]) -> list[Any]:
    out = []
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            if "podSelector" in peer:
                out.append(sorted(peer["podSelector"]["matchExpressions"][0]["values"]))
            else:
                out.append(peer["namespaceSelector"]["matchLabels"])
    return out


def _pod_targets(policy: dict[str, Any]) -> list[str]:
    return [
        peer["podSelector"]["matchExpressions"][0]["values"][0]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "matchExpressions" in peer.get("podSelector", {})
    ]


def test_default_deny_covers_the_platform() -> None:
    deny = objects(context())[("NetworkPolicy", "shop.default-deny")]["spec"]
    assert deny == {
        "podSelector": {"matchLabels": {"keelson.dev/platform": "shop"}},
        "policyTypes": ["Ingress", "Egress"],
    }


def test_ingress_from_callers_and_gateway_only() -> None:
    objs = objects(context())
    assert _sources(objs[("NetworkPolicy", "payments")]) == [["orders"]]  # called by orders, not exposed
    assert _sources(objs[("NetworkPolicy", "orders")]) == [["gateway"]]  # exposed, called by gateway
    assert _sources(objs[("NetworkPolicy", "gateway")]) == [{"kubernetes.io/metadata.name": "ingress-nginx"}]


def test_egress_to_callees_dns_kafka_and_database() -> None:
    objs = objects(context())
    orders = objs[("NetworkPolicy", "orders")]["spec"]["egress"]
    assert orders[0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert _pod_targets(objs[("NetworkPolicy", "orders")]) == ["payments"]
    assert {
        "ports": [{"protocol": "TCP", "port": 9092}],
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}],
    } in orders
    # Egress to a postgres server is the databases area's own policy, from the server's address.
    assert not any(p.get("port") == 5432 for rule in orders for p in rule.get("ports", []))
    assert _pod_targets(objs[("NetworkPolicy", "gateway")]) == ["notifications", "orders", "users"]
    # payments calls nobody
    assert _pod_targets(objs[("NetworkPolicy", "payments")]) == []


def test_calls_change_moves_the_edges() -> None:
    def payments_calls_users(spec):
        spec["services"][3]["calls"] = ["users"]

    objs = objects(context(payments_calls_users))
    assert _pod_targets(objs[("NetworkPolicy", "payments")]) == ["users"]
    assert _sources(objs[("NetworkPolicy", "users")]) == [["gateway", "payments"]]


def test_httproute_gateway_accepts_from_the_gateway_namespace() -> None:
    def httproute(spec):
        spec["gateway"]["routeKind"] = "HTTPRoute"
        spec["gateway"]["gatewayRef"] = {"name": "public", "namespace": "infra"}

    assert _sources(objects(context(httproute))[("NetworkPolicy", "gateway")]) == [
        {"kubernetes.io/metadata.name": "infra"}
    ]


def test_a_service_reaches_outside_only_what_it_declares() -> None:
    def declare(spec: dict[str, Any]) -> None:
        notifications = next(s for s in spec["services"] if s["name"] == "notifications")
        notifications["egress"] = [
            {"cidr": "203.0.113.0/24", "ports": [{"port": 587}]},  # the SMTP relay
            {"ports": [{"port": 443}]},  # an SMS and a push provider, on any address
        ]

    before = objects(context())[("NetworkPolicy", "notifications")]["spec"]["egress"]
    after = objects(context(declare))[("NetworkPolicy", "notifications")]["spec"]["egress"]
    assert after == [
        *before,
        {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP", "port": 587}]},
        {"ports": [{"protocol": "TCP", "port": 443}]},
    ]
    assert (
        objects(context(declare))[("NetworkPolicy", "orders")]["spec"]["egress"]
        == (objects(context())[("NetworkPolicy", "orders")]["spec"]["egress"])
    )
