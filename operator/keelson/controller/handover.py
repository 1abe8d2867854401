"""Handing a Deployment's `spec.replicas` over to its HPA without a dip. Pure: no I/O.

With autoscaling on, the operator stops rendering `replicas` (they are the HPA's). But server-side
apply removes a field that its only manager stops applying, and the API server then defaults it:
the Deployment would fall to 1 replica until the HPA acts (up to its 15 s sync period, longer
without metrics). Kubernetes' documented hand-over ("Transferring ownership between managers" in
the server-side apply docs) avoids it: first apply the field, with the value it has, under a
second field manager; the operator's apply without it then leaves it in place, owned by that
manager, until the HPA changes it (an update, which takes the field over).

The reverse switch needs no help: the Deployment is applied with its replicas (forced, so taken
from whichever manager holds them) before the no longer desired HPA is pruned, so it goes straight
from the HPA's size to the declared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from keelson.controller.cache import ChildCache, controller_uid
from keelson.controller.drift import needs_apply

HANDOVER_MANAGER = "keelson-handover"


def _hpas_by_target(desired: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The desired HPAs, by (namespace, name) of the Deployment they scale."""
    return {
        (o["metadata"]["namespace"], o["spec"]["scaleTargetRef"]["name"]): o
        for o in desired
        if o["kind"] == "HorizontalPodAutoscaler"
    }


def replicas_handovers(desired: list[dict[str, Any]], cache: ChildCache, uid: str) -> Iterator[dict[str, Any]]:
    """The apply bodies (for HANDOVER_MANAGER) that must land before the Deployments they name.

    A hand-over is due when a Deployment of the platform `uid` is about to be applied without
    replicas while its HPA is not there yet: autoscaling is being switched on. A new Deployment has
    no replicas to keep, one whose HPA exists was handed over already, and one that another owner
    controls is not applied at all."""
    hpas = _hpas_by_target(desired)
    for obj in desired:
        if obj["kind"] != "Deployment" or "replicas" in obj["spec"]:
            continue
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        hpa = hpas.get((namespace, name))
        # The HPA's presence first: it is the steady state, and a dict lookup, while the drift
        # check below is most of an idle pass's cost when asked for every Deployment.
        if hpa is None or cache.get("HorizontalPodAutoscaler", namespace, hpa["metadata"]["name"]) is not None:
            continue
        live = cache.get("Deployment", namespace, name)
        if live is None or controller_uid(live) not in (None, controller_uid(obj) or uid) or not needs_apply(obj, live):
            continue
        floor = int(hpa["spec"]["minReplicas"])
        current = int(live.get("spec", {}).get("replicas", 1))
        yield {
            "apiVersion": obj["apiVersion"],
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            # Never below the HPA's minimum: it would raise it there anyway, a little later.
            "spec": {"replicas": max(current, floor)},
        }


def initial_replicas(desired: list[dict[str, Any]], cache: ChildCache) -> list[dict[str, Any]]:
    """The apply bodies (for HANDOVER_MANAGER) that start new autoscaled Deployments at their HPA's
    minimum, to land right after the Deployments are created.

    Created without `replicas` (they are the HPA's), a Deployment starts at 1 and waits for the
    HPA's first sync (15 s, longer without metrics) to reach its minimum: a service declared with
    3 replicas for availability would run on 1 for that long. Handed over at once, it starts at
    the minimum, and the HPA takes the field over when it first scales, as on a switch."""
    hpas = _hpas_by_target(desired)
    out = []
    for obj in desired:
        if obj["kind"] != "Deployment" or "replicas" in obj["spec"]:
            continue
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        hpa = hpas.get((namespace, name))
        if hpa is None or int(hpa["spec"]["minReplicas"]) <= 1:
            continue
        if cache.get("Deployment", namespace, name) is not None:
            continue
        if cache.get("HorizontalPodAutoscaler", namespace, hpa["metadata"]["name"]) is not None:
            continue  # the HPA runs already: the size is its own
        out.append(
            {
                "apiVersion": obj["apiVersion"],
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": int(hpa["spec"]["minReplicas"])},
            }
        )
    return out
