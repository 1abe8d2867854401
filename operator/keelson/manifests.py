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
