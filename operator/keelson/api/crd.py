"""Generate the `MicroservicePlatform` CRD from the pydantic models.

pydantic emits JSON Schema 2020-12; a CRD wants a *structural* OpenAPI v3 schema: no `$ref`,
no `anyOf` for optionals, no `title`, no `default:` (see `v1alpha1`), `exclusiveMinimum` as a
boolean, `enum` for `const`. This module does that translation and nothing else, so the models stay the one source.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import yaml

from keelson.api import components, platformservice
from keelson.api import v1alpha1 as api
from keelson.api.status import MicroservicePlatformStatus

_DROP = {"title", "default", "examples"}
# On the generated CRD: a digest of its spec, which the operator compares at start with the one
# of the CRD it was built for (controller/crdcheck.py), so an un-upgraded CRD is noticed.
SCHEMA_DIGEST_ANNOTATION = "keelson.dev/schema-digest"
CRD_NAME = f"{api.PLURAL}.{api.GROUP}"
DEFINITION_CRD_NAME = f"{components.DEFINITION_PLURAL}.{api.GROUP}"


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        # Field-level keys (description, validations) win over the referenced model's.
        target.update({k: v for k, v in node.items() if k not in _DROP})
        node = target
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if any(v.get("type") == "integer" for v in variants) and any(v.get("type") == "string" for v in variants):
            node["x-kubernetes-int-or-string"] = True
        elif len(variants) == 1:
            merged = dict(variants[0])
            merged.update(node)
            node = merged
            return _resolve(node, defs)
        else:  # pragma: no cover - the models use no other unions
            raise ValueError(f"cannot express union in a structural schema: {variants}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]  # a one-value Literal: CRD schemas have no `const`
        elif key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "additionalProperties" and (value is False or node.get("x-kubernetes-preserve-unknown-fields")):
            continue  # the API server prunes unknown fields; `false` is not structural, and a free-form
            # field says so with x-kubernetes-preserve-unknown-fields alone
        elif key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _resolve(value, defs)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def _without_rules(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_rules(item) for item in node]
    if isinstance(node, dict):
        return {k: _without_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    return node


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    """The structural schema of one pydantic model."""
    raw = model.model_json_schema(mode="serialization")
    defs = raw.pop("$defs", {})
    return dict(_resolve(raw, defs))


def schema_digest(crd_spec: dict[str, Any]) -> str:
    """A digest of a CRD's spec as generated (key order and YAML formatting do not count)."""
    canonical = json.dumps(crd_spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def custom_resource_definition() -> dict[str, Any]:
    return _definition()


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    scope: str,
    columns: list[dict[str, str]],
    description: str | None,
    root_rules: list[Any],
    properties: dict[str, Any],
    status: bool,
) -> dict[str, Any]:
    version: dict[str, Any] = {"name": api.VERSION, "served": True, "storage": True}
    if status:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = [
        *columns,
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    rules = {"x-kubernetes-validations": root_rules} if root_rules else {}
    version["schema"] = {
        "openAPIV3Schema": {
            "description": description,
            "type": "object",
            "required": ["spec"],
            **rules,
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                **properties,
            },
        }
    }
    crd_spec = {
        "group": api.GROUP,
        "names": {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": singular,
            "shortNames": short_names,
            "categories": api.CATEGORIES,
        },
        "scope": scope,
        "versions": [version],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        # The digest the operator compares at start with the one it was built for (crdcheck).
        "metadata": {
            "name": f"{plural}.{api.GROUP}",
            "annotations": {SCHEMA_DIGEST_ANNOTATION: schema_digest(crd_spec)},
        },
        "spec": crd_spec,
    }


def _definition() -> dict[str, Any]:
    spec_schema = openapi_schema(api.MicroservicePlatformSpec)
    spec_schema["description"] = api.MicroservicePlatformSpec.__doc__
    # Status is written by the operator alone: rules there would only spend the CRD's CEL budget.
    status_schema = _without_rules(openapi_schema(MicroservicePlatformStatus))
    status_schema["description"] = MicroservicePlatformStatus.__doc__
    ready = '.status.conditions[?(@.type=="Ready")]'
    return _crd(
        kind=api.KIND,
        plural=api.PLURAL,
        singular=api.SINGULAR,
        short_names=api.SHORT_NAMES,
        scope="Namespaced",
        columns=[
            {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
            {"name": "Services", "type": "string", "jsonPath": ".status.readyServices"},
            {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
        ],
        description=api.MicroservicePlatform.__doc__,
        root_rules=api.ROOT_RULES,
        properties={"spec": spec_schema, "status": status_schema},
        status=True,
    )


def definition_crd() -> dict[str, Any]:
    """The ComponentDefinition CRD: cluster-scoped, a published version immutable (CEL)."""
    spec_schema = openapi_schema(components.ComponentDefinitionSpec)
    spec_schema["description"] = components.ComponentDefinitionSpec.__doc__
    spec_schema["x-kubernetes-validations"] = components.DEFINITION_SPEC_RULES
    return _crd(
        kind=components.DEFINITION_KIND,
        plural=components.DEFINITION_PLURAL,
        singular=components.DEFINITION_SINGULAR,
        short_names=components.DEFINITION_SHORT_NAMES,
        scope="Cluster",
        columns=[
            {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
            {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
        ],
        description=components.ComponentDefinition.__doc__,
        root_rules=components.DEFINITION_ROOT_RULES,
        properties={"spec": spec_schema},
        status=False,
    )


def platform_service_crd() -> dict[str, Any]:
    """The PlatformService CRD: namespaced, a service a product team attaches to a platform."""
    spec_schema = openapi_schema(platformservice.PlatformServiceSpec)
    spec_schema["description"] = platformservice.PlatformServiceSpec.__doc__
    status_schema = _without_rules(openapi_schema(platformservice.PlatformServiceStatus))
    status_schema["description"] = platformservice.PlatformServiceStatus.__doc__
    accepted = '.status.conditions[?(@.type=="Accepted")]'
    ready = '.status.conditions[?(@.type=="Ready")]'
    return _crd(
        kind=platformservice.KIND,
        plural=platformservice.PLURAL,
        singular=platformservice.SINGULAR,
        short_names=platformservice.SHORT_NAMES,
        scope="Namespaced",
        columns=[
            {"name": "Platform", "type": "string", "jsonPath": ".spec.platformRef.name"},
            {"name": "Accepted", "type": "string", "jsonPath": f"{accepted}.status"},
            {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
            {"name": "Reason", "type": "string", "jsonPath": f"{accepted}.reason"},
        ],
        description=platformservice.PlatformService.__doc__,
        root_rules=[],
        properties={"spec": spec_schema, "status": status_schema},
        status=True,
    )


_HEADER = "# Generated by `keelson crd` from operator/keelson/api; do not edit by hand.\n"


def crd_yaml() -> str:
    return _HEADER + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=120)


def definition_crd_yaml() -> str:
    return _HEADER + yaml.safe_dump(definition_crd(), sort_keys=False, width=120)


def platform_service_crd_yaml() -> str:
    return _HEADER + yaml.safe_dump(platform_service_crd(), sort_keys=False, width=120)
