"""ServiceAccount per service: its own identity, and no API token mounted by default."""

from __future__ import annotations

from typing import Any

from keelson.effective import EffectiveService
from keelson.render.context import RenderContext
from keelson.render.labels import metadata


def render_service_account(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(ctx, svc.name, svc.name),
        # The services never talk to the Kubernetes API; a mounted token would only be a risk.
        "automountServiceAccountToken": False,
    }
