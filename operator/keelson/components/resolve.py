"""Which published definition each component of a platform uses, and with which parameters.

`redis@1` resolves to the highest published 1.x.y, `redis@1.2` to the highest 1.2.z: a platform
moves within its pin when a platform team publishes, and never across it. Pure: the definitions
are given (the operator's watch cache, files for `keelson render`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keelson.api.components import ComponentDefinitionSpec
from keelson.api.v1alpha1 import ComponentUse, MicroservicePlatformSpec, Service
from keelson.components import schema


def version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch


@dataclass(frozen=True)
class ResolvedComponent:
    """A component of a service, ready to render: its definition and its full parameters."""

    service: str
    use: ComponentUse
    definition: ComponentDefinitionSpec
    parameters: Mapping[str, Any]
    path: str  # spec.services[i].components[j], for messages

    @property
    def name(self) -> str:
        return self.use.name

    @property
    def fullname(self) -> str:
        return f"{self.service}-{self.use.name}"

    @property
    def version(self) -> str:
        return self.definition.version


class ComponentProblems(ValueError):
    """Every problem found, one line each, with the path of the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def pick(use: ComponentUse, definitions: Iterable[ComponentDefinitionSpec]) -> ComponentDefinitionSpec | None:
    pin = use.pin
    matching = [d for d in definitions if d.type == use.type_name and version_key(d.version)[: len(pin)] == pin]
    return max(matching, key=lambda d: version_key(d.version), default=None)


def resolve(spec: MicroservicePlatformSpec, definitions: Iterable[ComponentDefinitionSpec]) -> list[ResolvedComponent]:
    """Every component of every service, resolved; raises ComponentProblems naming each field."""
    published = list(definitions)
    resolved: list[ResolvedComponent] = []
    problems: list[str] = []
    for i, svc in enumerate(spec.services):
        found, errors = resolve_service(svc, published, f"spec.services[{i}]")
        resolved.extend(found)
        problems.extend(errors)
    if problems:
        raise ComponentProblems(problems)
    return resolved


def resolve_service(
    svc: Service, published: list[ComponentDefinitionSpec], where: str
) -> tuple[list[ResolvedComponent], list[str]]:
    """One service's components, and the problems found, each named by its path under `where`."""
    resolved: list[ResolvedComponent] = []
    problems: list[str] = []
    for j, use in enumerate(svc.components or ()):
        path = f"{where}.components[{j}]"
        definition = pick(use, published)
        if definition is None:
            versions = sorted((d.version for d in published if d.type == use.type_name), key=version_key)
            known = f"published versions: {', '.join(versions)}" if versions else "no such component type"
            problems.append(f"{path}.type: {use.type} matches no ComponentDefinition ({known})")
            continue
        params, errors = schema.apply(use.parameters, definition.parameters, f"{path}.parameters")
        problems.extend(errors)
        resolved.append(ResolvedComponent(svc.name, use, definition, params, path))
    return resolved, problems
