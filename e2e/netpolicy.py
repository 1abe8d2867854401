"""Evaluate NetworkPolicies as the API server stores them: which pod may talk to which.

No CNI enforces policies on the local stack (kwok simulates nodes), so the tests evaluate the
policies the operator wrote, by the rules of `networking.k8s.io/v1`: a pod selected by no policy
of a direction is open in it; a selected pod admits a peer when some rule's peers and ports do;
a connection needs the sender's egress and the receiver's ingress.
"""

from __future__ import annotations

from typing import Any

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, op, values = labels.get(expr["key"]), expr["operator"], expr.get("values") or []
        if (op == "In" and value not in values) or (op == "NotIn" and value in values):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def _peer_admits(peer: dict[str, Any], labels: dict[str, str], namespace: str, own: str) -> bool:
    """Whether a rule's peer matches a pod (labels) in `namespace`, for a policy in `own`."""
    if "ipBlock" in peer:
        return False  # pod IPs are not in the tests' ipBlocks
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        if namespace != own:
            return False  # a bare podSelector means the policy's own namespace
    elif not selects(namespaces, {NAMESPACE_NAME_LABEL: namespace}):
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], labels)


def _port_admits(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports)


def allows(
    policies: list[dict[str, Any]],
    direction: str,
    pod: tuple[str, dict[str, str]],
    peer: tuple[str, dict[str, str]],
    *,
    port: int,
) -> bool:
    """Whether `pod` (namespace, labels) may send to / receive from `peer` on `port` under the
    policies of the pod's namespace (others are ignored)."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    here, labels = pod
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", here) == here
        and selects(p["spec"]["podSelector"], labels)
        and kind in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True  # not isolated
    for policy in selecting:
        for rule in policy["spec"].get(direction) or []:
            peers = rule.get("from" if direction == "ingress" else "to")
            if _port_admits(rule, port) and (not peers or any(_peer_admits(x, peer[1], peer[0], here) for x in peers)):
                return True
    return False


def connects(
    policies: list[dict[str, Any]], source: tuple[str, dict[str, str]], target: tuple[str, dict[str, str]], port: int
) -> bool:
    """A TCP connection from `source` to `target`: the source's egress and the target's ingress."""
    return allows(policies, "egress", source, target, port=port) and allows(
        policies, "ingress", target, source, port=port
    )
