"""PodDisruptionBudget per service.

`maxUnavailable: 1` rather than `minAvailable`: voluntary disruptions (drains, upgrades) take at
most one pod of a service at a time, yet a single-replica service never blocks a node drain
forever, which `minAvailable: 1` would (the trap CloudNativePG's n-1 rule avoids too).
"""

from __future__ import annotations

from typing import Any

from keelson.effective import EffectiveService
from keelson.render.context import RenderContext
from keelson.render.labels import metadata, selector_labels


def render_pdb(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ctx, svc.name, svc.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(ctx, svc.name)}},
    }
