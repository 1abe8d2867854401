"""The parameters schema of a component: the OpenAPI v3 subset a CRD's structural schema allows,
checked and applied here so that every error names its field in one line
(`spec.services[2].components[0].parameters.memory: must be a quantity`), never a page of
validator output.

Supported: type (object, array, string, integer, number, boolean), properties, required,
additionalProperties (false, true or a schema), items, enum, default, minimum/maximum,
minLength/maxLength, pattern, minItems/maxItems, format (quantity, duration, int32, int64, ...:
unknown formats are allowed, as the API server does), description, nullable,
x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields. Anything else is refused,
so a definition never relies on a keyword that silently does nothing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

from keelson.api.v1alpha1 import QUANTITY_PATTERN

KNOWN = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "format",
    "description",
    "example",
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
MAX_DEPTH = 16


def check_schema(schema: Any, path: str = "parameters") -> list[str]:
    """Problems with a schema itself, one line each; [] when it is usable."""
    problems: list[str] = []
    _check(schema, path, problems, 0)
    if not problems and isinstance(schema, Mapping) and schema.get("type", "object") != "object":
        problems.append(f"{path}.type: the parameters are an object")
    return problems


def _check(node: Any, path: str, problems: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        problems.append(f"{path}: nested deeper than {MAX_DEPTH} levels")
        return
    if not isinstance(node, Mapping):
        problems.append(f"{path}: must be a schema (an object)")
        return
    for key in node:
        if key not in KNOWN:
            problems.append(f"{path}.{key}: not supported (supported: {', '.join(sorted(KNOWN))})")
    kind = node.get("type")
    untyped = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if kind is None and not untyped:
        problems.append(f"{path}.type: required (one of {', '.join(sorted(TYPES))})")
    elif kind is not None and kind not in TYPES:
        problems.append(f"{path}.type: {kind!r} is not one of {', '.join(sorted(TYPES))}")
    if "pattern" in node:
        try:
            re.compile(str(node["pattern"]))
        except re.error as exc:
            problems.append(f"{path}.pattern: not a regular expression ({exc})")
    for key, sub in (node.get("properties") or {}).items():
        _check(sub, f"{path}.properties.{key}", problems, depth + 1)
    if "properties" in node and not isinstance(node["properties"], Mapping):
        problems.append(f"{path}.properties: must be an object")
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        _check(extra, f"{path}.additionalProperties", problems, depth + 1)
    if "items" in node:
        _check(node["items"], f"{path}.items", problems, depth + 1)
    elif kind == "array":
        problems.append(f"{path}.items: required for an array")
    required = node.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        problems.append(f"{path}.required: must be a list of property names")
    if "default" in node and not problems:
        for problem in validate_value(node["default"], node, f"{path}.default"):
            problems.append(problem)


def validate_value(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    return list(_validate(value, schema, path))


def _type_ok(value: Any, kind: str) -> bool:
    match kind:
        case "object":
            return isinstance(value, Mapping)
        case "array":
            return isinstance(value, list)
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
    return False


def _describe(kind: str) -> str:
    return {"object": "an object", "array": "a list", "integer": "an integer", "number": "a number"}.get(
        kind, f"a {kind}"
    )


def _validate(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    if value is None:
        if not schema.get("nullable"):
            yield f"{path}: must not be null"
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            yield f"{path}: must be an integer or a string"
            return
    elif "type" in schema and not _type_ok(value, str(schema["type"])):
        yield f"{path}: must be {_describe(str(schema['type']))}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: must be one of {', '.join(map(repr, schema['enum']))}"
    if isinstance(value, str):
        yield from _string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and (
            value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"])
        ):
            yield f"{path}: must be at least {schema['minimum']}"
        if "maximum" in schema and (
            value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"])
        ):
            yield f"{path}: must be at most {schema['maximum']}"
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield f"{path}: at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{path}: at most {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                yield from _validate(item, items, f"{path}[{i}]")
    elif isinstance(value, Mapping):
        yield from _object(value, schema, path)


def _string(value: str, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield f"{path}: at least {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"{path}: at most {schema['maxLength']} characters"
    if "pattern" in schema and re.search(str(schema["pattern"]), value) is None:
        yield f"{path}: must match {schema['pattern']}"
    fmt = schema.get("format")
    if fmt == "quantity" and re.fullmatch(QUANTITY_PATTERN, value) is None:
        yield f"{path}: must be a quantity (e.g. 256Mi, 0.5, 100m)"
    elif fmt == "duration" and re.fullmatch(DURATION, value) is None:
        yield f"{path}: must be a duration (e.g. 30s, 5m, 1h30m)"


def _object(value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> Iterator[str]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in value:
            yield f"{path}.{name}: required"
    extra = schema.get("additionalProperties")
    for key, sub in value.items():
        if key in properties:
            yield from _validate(sub, properties[key], f"{path}.{key}")
        elif isinstance(extra, Mapping):
            yield from _validate(sub, extra, f"{path}.{key}")
        elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
            continue
        else:
            known = ", ".join(sorted(properties)) or "none"
            yield f"{path}.{key}: unknown parameter (known: {known})"


def with_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """The value with the schema's defaults filled in where a field is absent, as the API server
    defaults a structural schema (objects only; a list's items get their defaults too)."""
    if isinstance(value, Mapping):
        out = dict(value)
        for key, sub in (schema.get("properties") or {}).items():
            if key not in out and isinstance(sub, Mapping) and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out and isinstance(sub, Mapping):
                out[key] = with_defaults(out[key], sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [with_defaults(v, schema["items"]) for v in value]
    return value


def apply(
    parameters: Mapping[str, Any] | None, schema: Mapping[str, Any] | None, path: str
) -> tuple[dict[str, Any], list[str]]:
    """The parameters with their defaults, and the problems with them (paths under `path`)."""
    given = dict(parameters or {})
    if schema is None:
        return given, [f"{path}.{key}: unknown parameter (the definition takes none)" for key in given]
    full = with_defaults(given, schema)
    return full, validate_value(full, schema, path)
