from pathlib import Path
from typing import Any

import yaml

from keelson.api.crd import crd_yaml, custom_resource_definition

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = [
    ROOT / "crds" / "keelson.dev_microserviceplatforms.yaml",
    ROOT / "charts" / "keelson" / "files" / "crds" / "keelson.dev_microserviceplatforms.yaml",
]


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_committed_crds_are_current() -> None:
    # Regenerate with: keelson crd -o crds/keelson.dev_microserviceplatforms.yaml \
    #   -o charts/keelson/files/crds/keelson.dev_microserviceplatforms.yaml
    for path in COMMITTED:
        assert path.read_text() == crd_yaml(), f"{path} is stale: regenerate it with `keelson crd -o ...`"


def test_schema_is_structural_and_has_no_defaults() -> None:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if not path.endswith(".properties"):
            assert "default" not in node, f"schema default at {path} makes GitOps tools report drift"


def test_every_spec_field_has_a_description() -> None:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    for path, node in _walk(spec):
        if path.endswith(".properties"):
            for name, field in node.items():
                assert field.get("description"), f"{path}.{name} has no description"


def test_names_and_columns() -> None:
    crd = custom_resource_definition()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["msp"] and names["categories"] == ["keelson"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "Services", "Reason", "Age"]
    services = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["services"]
    assert services["x-kubernetes-list-type"] == "map"
    assert yaml.safe_load(crd_yaml()) == crd
