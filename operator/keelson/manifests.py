"""Reading platform manifests (YAML files or stdin) into validated models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from keelson.api.v1alpha1 import GROUP, KIND, MicroservicePlatform


def load_documents(path: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def load_platforms(path: str) -> list[MicroservicePlatform]:
    return [
        MicroservicePlatform.from_object(doc)
        for doc in load_documents(path)
        if doc.get("kind") == KIND and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]


def _yaml_files(path: str) -> list[Path]:
    root = Path(path)
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))
    return [root]


def load_definition_documents(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """ComponentDefinition documents from files or directories (searched for *.yaml), with
    the file each came from."""
    found = []
    for path in paths:
        for file in _yaml_files(path):
            for doc in load_documents(str(file)):
                if doc.get("kind") == "ComponentDefinition":
                    found.append((str(file), doc))
    return found


def _walk(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _walk(value, f"{path}.{key.value}" if path else str(key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{path}[{i}]", lines)


def field_lines(text: str) -> list[dict[str, int]]:
    """For each YAML document of a file, the line (1-based) where each field path starts
    (`spec.templates[0].template`), so that a problem can name its line."""
    out = []
    for root in yaml.compose_all(text):
        lines: dict[str, int] = {}
        if root is not None:
            _walk(root, "", lines)
        out.append(lines)
    return out
