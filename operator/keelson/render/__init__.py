"""Pure rendering: a validated platform spec in, the desired Kubernetes objects out. No I/O."""

from __future__ import annotations

from typing import Any

from keelson.components.resolve import ComponentProblems
from keelson.render.components import render_components
from keelson.render.configmap import render_config_map
from keelson.render.context import DEFAULT_REFERENCE_IMAGE, RenderContext
from keelson.render.dashboards import render_dashboards
from keelson.render.deployment import render_deployment
from keelson.render.hpa import render_hpa
from keelson.render.kafkatopics import render_kafka_topics
from keelson.render.kafkausers import render_kafka_users
from keelson.render.networkpolicy import render_default_deny, render_network_policy
from keelson.render.pdb import render_pdb
from keelson.render.prometheusrule import render_prometheus_rule
from keelson.render.routes import render_route
from keelson.render.service import render_service
from keelson.render.serviceaccount import render_service_account
from keelson.render.servicemonitor import render_service_monitor

__all__ = ["DEFAULT_REFERENCE_IMAGE", "ComponentProblems", "RenderContext", "render_platform"]


def render_platform(ctx: RenderContext) -> list[dict[str, Any]]:
    """Every desired child object, in an order that is safe to apply one by one."""
    objects: list[dict[str, Any] | None] = [render_default_deny(ctx)]
    for svc in ctx.services:
        objects += [
            render_service_account(ctx, svc),
            render_config_map(ctx, svc),
            render_service(ctx, svc),
            render_deployment(ctx, svc),
            render_hpa(ctx, svc),
            render_pdb(ctx, svc),
            render_network_policy(ctx, svc),
        ]
    objects.append(render_route(ctx))
    objects.extend(render_kafka_topics(ctx))
    objects.extend(render_kafka_users(ctx))
    objects += [render_service_monitor(ctx), render_prometheus_rule(ctx), render_dashboards(ctx)]
    builtin = [o for o in objects if o is not None]
    components = render_components(ctx) if ctx.components else []
    taken = {(o["kind"], o["metadata"]["name"]) for o in builtin}
    clashes = [
        f"{kind}/{name}"
        for kind, name in ((o["kind"], o["metadata"]["name"]) for o in components)
        if (kind, name) in taken
    ]
    if clashes:
        raise ComponentProblems([f"{c}: a component's object has the name of one the platform makes" for c in clashes])
    return [*builtin, *components]
