"""Whether a component's objects are ready, from what the watch cache shows. Pure.

Defaults by kind (a definition adds `readiness` rules for any kind, which replace the default):
a Deployment is ready when its current generation is rolled out and available, a StatefulSet when
all its replicas are ready, a Job when it completed (a failed Job says so); anything else when it
exists. Like Crossplane's auto-ready, a definition author needs no rule for the usual kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keelson.api.components import ReadinessRule
from keelson.components.templating import Renderer, TemplateError


@dataclass(frozen=True)
class ObjectReadiness:
    ready: bool
    reason: str  # "Ready", or what it waits for


def _rolled_out(live: Mapping[str, Any]) -> bool:
    status = live.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(live.get("metadata", {}).get("generation") or 0)


def _default(kind: str, live: Mapping[str, Any]) -> ObjectReadiness:
    spec, status = live.get("spec") or {}, live.get("status") or {}
    label = f"{kind}/{live.get('metadata', {}).get('name')}"
    if kind in ("Deployment", "StatefulSet"):
        want = int(spec.get("replicas", 1) or 0)
        have = int(status.get("availableReplicas" if kind == "Deployment" else "readyReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        if not _rolled_out(live) or have < want or updated < want:
            return ObjectReadiness(False, f"{label}: {have}/{want} ready")
    elif kind == "Job":
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if conditions.get("Failed") == "True":
            return ObjectReadiness(False, f"{label}: failed")
        if conditions.get("Complete") != "True":
            return ObjectReadiness(False, f"{label}: not complete")
    return ObjectReadiness(True, "Ready")


def object_readiness(
    kind: str, live: Mapping[str, Any] | None, rules: Sequence[ReadinessRule] | None, renderer: Renderer
) -> ObjectReadiness:
    if live is None:
        return ObjectReadiness(False, f"{kind}: not created yet")
    rule = next((r for r in rules or () if r.kind == kind), None)
    if rule is None:
        return _default(kind, live)
    label = f"{kind}/{live.get('metadata', {}).get('name')}"
    try:
        ok = renderer.expression(rule.expression)({"object": live})
    except TemplateError as exc:
        return ObjectReadiness(False, f"{label}: readiness expression failed: {exc}")
    return (
        ObjectReadiness(True, "Ready")
        if ok is True
        else ObjectReadiness(False, f"{label}: not ready ({rule.expression})")
    )
