"""The services' components in the operator: the published ComponentDefinitions (from the watch
index), and each component's status from the watch caches (condition ComponentsReady).

Resolving and rendering are pure (`keelson.components`, `keelson.render.components`); this
module is what needs the caches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from keelson.api.components import ComponentDefinition, ComponentDefinitionSpec
from keelson.api.status import ComponentStatus, ServiceStatus
from keelson.api.v1alpha1 import MicroservicePlatformSpec, Placement, Service
from keelson.components.readiness import object_readiness
from keelson.components.resolve import ComponentProblems, ResolvedComponent, resolve_service
from keelson.components.templating import Renderer
from keelson.controller.cache import ChildCache
from keelson.controller.conditions import ConditionState
from keelson.render import RenderContext
from keelson.render.components import COMPONENT_LABEL, render_components

log = logging.getLogger("keelson.components")

COMPONENTS_READY = "ComponentsReady"


class DefinitionCatalog:
    """The published definitions, parsed once per version of each object. One the API server
    accepted but this operator cannot read (an older operator, a newer CRD) is left out and
    logged: a platform using it then says which type it cannot find."""

    def __init__(self) -> None:
        self.index: Mapping[Any, Any] = {}
        self._parsed: dict[str, tuple[str, ComponentDefinitionSpec | None]] = {}

    def _parse(self, body: Mapping[str, Any]) -> ComponentDefinitionSpec | None:
        meta = body.get("metadata") or {}
        name, version = str(meta.get("name", "")), str(meta.get("resourceVersion", ""))
        known = self._parsed.get(name)
        if known is not None and known[0] == version:
            return known[1]
        try:
            spec: ComponentDefinitionSpec | None = ComponentDefinition.model_validate(dict(body)).spec
        except ValidationError as exc:
            log.error("ComponentDefinition %s is unreadable, left out: %s", name, exc.errors()[0].get("msg"))
            spec = None
        self._parsed[name] = (version, spec)
        return spec

    def definitions(self) -> list[ComponentDefinitionSpec]:
        out = []
        for store in list(self.index.values()):
            for body in store:
                spec = self._parse(body)
                if spec is not None:
                    out.append(spec)
        return out


def team_component_problems(
    service: Service,
    namespace: str,
    *,
    platform: tuple[str, str],
    spec: MicroservicePlatformSpec,
    published: Sequence[ComponentDefinitionSpec],
) -> list[str]:
    """What keeps an attached service's components from rendering in its team's namespace: an
    unknown type, bad parameters, or templates that fail with them. Checked on the service alone
    (`keelson.tenancy.attach` refuses it), so that a team's component never fails the platform."""
    resolved, problems = resolve_service(service, list(published), "spec")
    if problems or not resolved:
        return problems
    alone = MicroservicePlatformSpec(domain=spec.domain, services=[service])
    placement = Placement(service=service.name, namespace=namespace, name=service.name, uid="")
    ctx = RenderContext(
        name=platform[1],
        namespace=platform[0],
        spec=alone,
        components=tuple(resolved),
        placements={service.name: placement},
    )
    try:
        render_components(ctx)
    except ComponentProblems as exc:
        return list(exc.problems)
    return []


def users_of(platforms: Iterable[tuple[Any, dict[str, Any]]], type_: str) -> list[Any]:
    """The keys of the platforms with a service that uses a component of this type."""
    keys = []
    for key, body in platforms:
        services = (body.get("spec") or {}).get("services") or []
        if any(str(c.get("type", "")).partition("@")[0] == type_ for s in services for c in s.get("components") or []):
            keys.append(key)
    return keys


def component_statuses(
    components: Sequence[ResolvedComponent],
    desired: Sequence[dict[str, Any]],
    cache: ChildCache,
) -> tuple[dict[str, list[ComponentStatus]], ConditionState]:
    renderer = Renderer()
    by_service: dict[str, list[ComponentStatus]] = {}
    waiting: list[str] = []
    for component in components:
        mine = [o for o in desired if (o["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == component.fullname]
        reasons = []
        for obj in mine:
            # In the service's namespace: a team's, for a service a PlatformService attached.
            live = cache.get(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
            readiness = object_readiness(obj["kind"], live, component.definition.readiness, renderer)
            if not readiness.ready:
                reasons.append(readiness.reason)
        by_service.setdefault(component.service, []).append(
            ComponentStatus(
                name=component.name,
                type=component.use.type,
                version=component.version,
                ready=not reasons,
                reason="Ready" if not reasons else reasons[0],
                objects=[f"{o['kind']}/{o['metadata']['name']}" for o in mine],
            )
        )
        if reasons:
            waiting.append(f"{component.service}/{component.name} ({reasons[0]})")
    if waiting:
        shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
        return by_service, ConditionState(COMPONENTS_READY, "False", "ComponentsProgressing", f"waiting for {shown}")
    return by_service, ConditionState(
        COMPONENTS_READY, "True", "ComponentsReady", f"{len(components)} component(s) ready"
    )


def with_components(
    services: list[ServiceStatus], by_service: Mapping[str, list[ComponentStatus]]
) -> list[ServiceStatus]:
    return [s.model_copy(update={"components": by_service[s.name]}) if s.name in by_service else s for s in services]


def invalid(problems: Sequence[str]) -> tuple[ConditionState, ConditionState]:
    """Ready and ComponentsReady for a platform whose components cannot be resolved or rendered:
    nothing is applied or pruned until it is fixed (a bad edit never takes a running cache away)."""
    message = "; ".join(problems)[:4096]
    return (
        ConditionState("Ready", "False", "InvalidSpec", message),
        ConditionState(COMPONENTS_READY, "False", "InvalidSpec", message),
    )
