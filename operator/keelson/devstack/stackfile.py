"""``<state>/stack.json``: what a stack chose once and must keep (its ports, its services)."""

import json
import os
from pathlib import Path
from typing import Any

STACK_FILE = "stack.json"


def stack_file(state_dir: Path) -> Path:
    return state_dir / STACK_FILE


def load(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(stack_file(state_dir).read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{stack_file(state_dir)} is not a JSON object")
    return data


def save(state_dir: Path, data: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write must not lose the ports other processes listen on."""
    path = stack_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def update(state_dir: Path, **values: Any) -> dict[str, Any]:
    data = load(state_dir)
    data.update(values)
    save(state_dir, data)
    return data
