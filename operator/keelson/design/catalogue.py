"""The system types Keelson can design, one blueprint file each in `systems/`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from keelson.design.blueprint import Blueprint

SYSTEM_TYPES = ("ecommerce", "booking", "social", "analytics", "saas", "gaming")


def _parse(text: str) -> Blueprint:
    return Blueprint.model_validate(yaml.safe_load(text))


def system_blueprint(system: str) -> Blueprint:
    if system not in SYSTEM_TYPES:
        raise ValueError(f"unknown system type {system!r}; one of {', '.join(SYSTEM_TYPES)}")
    return _parse(resources.files("keelson.design").joinpath("systems", f"{system}.yaml").read_text())


def load_blueprint(path: Path) -> Blueprint:
    """A user's own blueprint (`--services FILE`), in the shape of the catalogue's."""
    return _parse(path.read_text())
