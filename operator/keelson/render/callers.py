"""Authenticated calls between services: what each one may call and who may call it.

A caller proves which service it is with a ServiceAccount token the kubelet mints for its pod:
one projected `serviceAccountToken` file per service it calls, with that callee's audience (so a
token cannot be replayed to another service). A callee verifies the token against the cluster's
service-account issuer (its JWKS, which the operator reads from the API server and renders into
the ConfigMap) and accepts only the callers the platform declares: services whose `calls` name it,
and the gateway when it is exposed. The services' side is `keelson_services.callers`.
"""

from __future__ import annotations

import json
from typing import Any

from keelson.effective import EffectiveService
from keelson.render.context import RenderContext

TOKENS_VOLUME = "call-tokens"
TOKENS_DIR = "/var/run/keelson/calls"
# What the API server defaults, written out so the drift check agrees with what it stores.
TOKEN_SECONDS = 3600
DEFAULT_MODE = 0o644


def audience(ctx: RenderContext, service: str) -> str:
    return f"keelson.dev/{ctx.namespace}/{ctx.name}/{service}"


def subject(ctx: RenderContext, service: str) -> str:
    """The `sub` of a token of the service's ServiceAccount (named after the service)."""
    return f"system:serviceaccount:{ctx.namespace_of(service)}:{service}"


def callees(ctx: RenderContext, svc: EffectiveService) -> list[str]:
    """The services `svc` calls: its `calls`, and for the gateway every exposed service."""
    names = set(svc.calls)
    gateway = ctx.gateway_service
    if gateway is not None and svc.name == gateway.name:
        names |= {s.name for s in ctx.services if s.expose_path and s.name != svc.name}
    return sorted(names)


def callers(ctx: RenderContext, svc: EffectiveService) -> list[str]:
    """The services that may call `svc`: those that name it in `calls`, and the gateway if exposed."""
    names = set(svc.callers)
    gateway = ctx.gateway_service
    if gateway is not None and svc.expose_path and svc.name != gateway.name:
        names.add(gateway.name)
    return sorted(names)


def caller_env(ctx: RenderContext, svc: EffectiveService) -> dict[str, str]:
    """The ConfigMap keys of both sides. Every service gets a callers policy, an empty one when
    nobody calls it: a service that is not called accepts no internal call."""
    allowed = {subject(ctx, name): name for name in callers(ctx, svc)}
    env = {
        "KEELSON_CALLER_AUDIENCE": audience(ctx, svc.name),
        "KEELSON_ALLOWED_CALLERS": json.dumps(allowed, sort_keys=True),
    }
    if ctx.token_issuer is not None:
        env["KEELSON_CALLER_ISSUER"] = ctx.token_issuer.issuer
        env["KEELSON_CALLER_JWKS"] = ctx.token_issuer.jwks
    if callees(ctx, svc):
        env["KEELSON_CALL_TOKENS_DIR"] = TOKENS_DIR
    return env


def token_volume(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any] | None:
    """The projected volume with one token per callee, or None for a service that calls nobody."""
    names = callees(ctx, svc)
    if not names:
        return None
    sources = [
        {"serviceAccountToken": {"audience": audience(ctx, name), "expirationSeconds": TOKEN_SECONDS, "path": name}}
        for name in names
    ]
    return {"name": TOKENS_VOLUME, "projected": {"defaultMode": DEFAULT_MODE, "sources": sources}}


def token_mount() -> dict[str, Any]:
    return {"name": TOKENS_VOLUME, "mountPath": TOKENS_DIR, "readOnly": True}
