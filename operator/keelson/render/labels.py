"""Labels and names shared by every rendered object.

Only Keelson's own labels are set: Argo CD's tracking label and annotations
(`app.kubernetes.io/instance`, `argocd.argoproj.io/*`) on the platform are never copied to
children, or Argo CD would see them as its own resources and prune them in a loop.
"""

from __future__ import annotations

from typing import Any

from keelson.render.context import RenderContext

MANAGED_BY = "keelson"
PLATFORM_LABEL = "keelson.dev/platform"
# On the objects of an attached service (a PlatformService), which live in its team's namespace:
# where their platform is, so that their watch events find it.
PLATFORM_NAMESPACE_LABEL = "keelson.dev/platform-namespace"
NAME_LABEL = "app.kubernetes.io/name"


def platform_labels(ctx: RenderContext) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": ctx.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        PLATFORM_LABEL: ctx.name,
    }


def service_labels(ctx: RenderContext, service: str) -> dict[str, str]:
    return {NAME_LABEL: service, **platform_labels(ctx)}


def selector_labels(ctx: RenderContext, service: str) -> dict[str, str]:
    """The immutable subset used in selectors: never add to it (Deployment selectors can't change)."""
    return {NAME_LABEL: service, PLATFORM_LABEL: ctx.name}


def metadata(ctx: RenderContext, name: str, service: str | None = None, *, with_service: bool = True) -> dict[str, Any]:
    """An object's name, namespace and labels. A service's own object (`with_service`) lives with
    the service: in its team's namespace when a PlatformService attached it. An object the
    platform keeps about a service (a KafkaTopic of its subscription, a KafkaUser, a CloudNativePG
    Database) stays in the platform's namespace, with its operator."""
    labels = service_labels(ctx, service) if service else platform_labels(ctx)
    namespace = ctx.namespace_of(service) if service and with_service else ctx.namespace
    if namespace != ctx.namespace:
        labels[PLATFORM_NAMESPACE_LABEL] = ctx.namespace
    return {"name": name, "namespace": namespace, "labels": labels}


def config_map_name(service: str) -> str:
    return f"{service}-config"
