"""What the validating admission webhook refuses, as one line per problem naming the field.

The same checks run at reconcile time (a platform whose components cannot resolve or render is
`InvalidSpec` with these messages, and nothing of it is pruned), because the webhook is allowed to
fail open: its `failurePolicy` is Ignore (docs/components.md), so an operator that is down or
being upgraded never wedges the cluster's writes to platforms and definitions.

- a ComponentDefinition is refused when its fields, parameters schema or templates are wrong, or
  when rendering its example yields a disallowed kind or another namespace (`render.vet`);
- deleting one is refused while a platform resolves to that very version, naming the platforms;
- a platform is refused when a component's type or version is not published, its parameters do
  not match the schema, or its templates fail to render with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from keelson.api.components import ComponentDefinitionSpec
from keelson.api.platformservice import PlatformService
from keelson.api.v1alpha1 import MicroservicePlatform, Service
from keelson.components.resolve import ComponentProblems, pick, resolve
from keelson.render import RenderContext
from keelson.render.components import render_components
from keelson.render.vet import pydantic_problems, vet_definition

MAX_PROBLEMS = 20


def _limited(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more"]


def review_platform(body: Mapping[str, Any], definitions: Sequence[ComponentDefinitionSpec]) -> list[str]:
    try:
        platform = MicroservicePlatform.from_object(dict(body))
    except ValidationError as exc:
        return _limited(pydantic_problems(exc))
    if not any(s.components for s in platform.spec.services):
        return []
    try:
        components = tuple(resolve(platform.spec, definitions))
        ctx = RenderContext(
            name=platform.metadata.name,
            namespace=platform.metadata.namespace,
            spec=platform.spec,
            components=components,
        )
        render_components(ctx)
    except ComponentProblems as exc:
        return _limited(exc.problems)
    return []


def review_definition(body: Mapping[str, Any]) -> list[str]:
    return _limited(vet_definition(body))


def review_definition_delete(
    body: Mapping[str, Any],
    platforms: Iterable[tuple[str, Mapping[str, Any]]],
    definitions: Sequence[ComponentDefinitionSpec],
    platform_services: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> list[str]:
    """Refused while a platform, or a product team's PlatformService, resolves to this very
    version (with it still published)."""
    spec = body.get("spec") or {}
    type_, version = spec.get("type"), spec.get("version")
    using: list[tuple[str, list[Service]]] = []
    for key, platform in platforms:
        try:
            using.append((key, list(MicroservicePlatform.from_object(dict(platform)).spec.services)))
        except ValidationError:
            continue
    for key, obj in platform_services:
        try:
            using.append((f"PlatformService {key}", [PlatformService.from_object(dict(obj)).spec.service()]))
        except ValidationError:
            continue
    users = []
    for key, services in using:
        for svc in services:
            for use in svc.components or ():
                chosen = pick(use, definitions) if use.type_name == type_ else None
                if chosen is not None and chosen.version == version:
                    users.append(f"{key} (service {svc.name}, component {use.name})")
    if not users:
        return []
    shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
    return [f"{type_} {version} is in use by {shown}: move them to another version first"]
