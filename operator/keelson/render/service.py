"""ClusterIP Service per service: its stable name is the service discovery."""

from __future__ import annotations

from typing import Any

from keelson.effective import EffectiveService
from keelson.render.context import RenderContext
from keelson.render.labels import metadata, selector_labels


def render_service(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, svc.name, svc.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ctx, svc.name),
            "ports": [
                {"name": "http", "port": svc.port, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
            ],
        },
    }
