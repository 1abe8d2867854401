"""HorizontalPodAutoscaler (autoscaling/v2) for services with autoscaling on."""

from __future__ import annotations

from typing import Any

from keelson.effective import EffectiveService
from keelson.render.context import RenderContext
from keelson.render.labels import metadata


def render_hpa(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any] | None:
    if not svc.autoscaling.enabled:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(ctx, svc.name, svc.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
            "minReplicas": svc.autoscaling.min_replicas,
            "maxReplicas": svc.autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": svc.autoscaling.target_cpu},
                    },
                }
            ],
        },
    }
