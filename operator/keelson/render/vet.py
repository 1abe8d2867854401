"""Checking a ComponentDefinition before anyone uses it: what `keelson def vet` prints and what
admission refuses. One line per problem, each with the path of the field (and, from a file, the
line): its fields, its parameters schema (and the defaults against it), every template compiled,
the readiness expressions compiled, and a render of the `example` parameters (or the schema's
defaults) in a sample platform, held to the definition's allowed kinds like a real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from keelson.api.components import ComponentDefinition, ComponentDefinitionSpec
from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.components import schema
from keelson.components.resolve import ComponentProblems, resolve
from keelson.components.templating import Renderer, TemplateError
from keelson.render.components import render_components
from keelson.render.context import RenderContext

SAMPLE_SERVICE = "sample"


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        out.append(f"{prefix}{path}: {err['msg']}")
    return out


def sample_platform(spec: ComponentDefinitionSpec, parameters: Mapping[str, Any] | None) -> MicroservicePlatformSpec:
    major = spec.version.split(".")[0]
    use = {"name": spec.type[:30].rstrip("-"), "type": f"{spec.type}@{major}"}
    if parameters:
        use["parameters"] = dict(parameters)  # type: ignore[assignment]
    return MicroservicePlatformSpec.model_validate(
        {
            "domain": "sample",
            "services": [{"name": SAMPLE_SERVICE, "image": "registry.example/sample:1.0.0", "components": [use]}],
        }
    )


def vet_spec(spec: ComponentDefinitionSpec) -> list[str]:
    """Problems with a definition whose fields parsed."""
    problems = schema.check_schema(spec.parameters, "spec.parameters") if spec.parameters is not None else []
    renderer = Renderer()
    for k, template in enumerate(spec.templates):
        try:
            renderer.compile(template.template)
        except TemplateError as exc:
            problems.append(f"spec.templates[{k}] ({template.name}): {exc}")
    for k, rule in enumerate(spec.readiness or ()):
        try:
            renderer.expression(rule.expression)
        except TemplateError as exc:
            problems.append(f"spec.readiness[{k}].expression: {exc}")
    if problems:
        return problems
    example = spec.example
    if example is not None and spec.parameters is not None:
        _, errors = schema.apply(example, spec.parameters, "spec.example")
        if errors:
            return errors
    try:
        platform = sample_platform(spec, example)
    except ValidationError as exc:
        return pydantic_problems(exc, "spec.example: ")
    try:
        ctx = RenderContext(
            name="sample", namespace="sample", spec=platform, components=tuple(resolve(platform, [spec]))
        )
        render_components(ctx)
    except ComponentProblems as exc:
        # The sample platform's path means nothing to the author: name the definition's field.
        prefix = f"spec.services[0].components[0] ({spec.type}@{spec.version}): "
        return [f"spec.{p.removeprefix(prefix)} (rendering the example)" for p in exc.problems]
    return []


def vet_definition(doc: Mapping[str, Any]) -> list[str]:
    """Problems with a definition as written (a whole object)."""
    if doc.get("kind") != "ComponentDefinition":
        return [f"kind: {doc.get('kind')!r} is not ComponentDefinition"]
    try:
        definition = ComponentDefinition.model_validate(dict(doc))
    except ValidationError as exc:
        return pydantic_problems(exc)
    return vet_spec(definition.spec)
