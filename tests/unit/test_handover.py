"""Handing replicas over to an HPA: when a hand-over is due (the order of the writes is tested in
test_reconciler.py, the real API server in e2e/test_autoscaling.py)."""

from typing import Any

from keelson.controller.cache import DictCache
from keelson.controller.drift import with_hash
from keelson.controller.handover import replicas_handovers


def _deployment(replicas: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "app", "image": "img:2"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    meta = {"name": "users", "namespace": "ns"}
    return with_hash({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})


def _hpa(minimum: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "users", "namespace": "ns"},
        "spec": {"scaleTargetRef": {"name": "users"}, "minReplicas": minimum, "maxReplicas": 10},
    }


def _cache(live_replicas: int | None, *, hpa: bool = False, owner: str | None = None) -> DictCache:
    stores: dict[str, Any] = {}
    if live_replicas is not None:
        live = _deployment(live_replicas)
        live["metadata"] = {**live["metadata"], "annotations": {}}  # applied before the switch
        if owner:
            live["metadata"]["ownerReferences"] = [{"uid": owner, "controller": True}]
        stores["Deployment"] = {("ns", "users"): live}
    if hpa:
        stores["HorizontalPodAutoscaler"] = {("ns", "users"): _hpa(3)}
    return DictCache(stores)


def test_a_hand_over_is_due_only_when_autoscaling_is_switched_on() -> None:
    on = [_deployment(None), _hpa(3)]
    assert list(replicas_handovers(on, _cache(4), "p")) == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "users", "namespace": "ns"},
            "spec": {"replicas": 4},
        }
    ]
    # Below the HPA's minimum: handed over at the minimum, which the HPA would go to anyway.
    assert [b["spec"] for b in replicas_handovers(on, _cache(2), "p")] == [{"replicas": 3}]
    assert list(replicas_handovers(on, _cache(None), "p")) == []  # a new Deployment
    assert list(replicas_handovers(on, _cache(4, hpa=True), "p")) == []  # handed over already
    assert list(replicas_handovers(on, _cache(4, owner="someone-else"), "p")) == []  # not ours to apply
    assert list(replicas_handovers([_deployment(4)], _cache(4), "p")) == []  # autoscaling off
