"""Where built binaries live: outside the repo, keyed by component and version."""

import os
from pathlib import Path


def cache_root() -> Path:
    """``$KEELSON_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/keelson``."""
    explicit = os.environ.get("KEELSON_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "keelson"


def bin_dir(component: str, version: str, root: Path | None = None) -> Path:
    """``<cache>/bin/<component>-<version>``: one directory per build, holding its binaries."""
    return (root or cache_root()) / "bin" / f"{component}-{version}"


def work_dir(component: str, version: str, root: Path | None = None) -> Path:
    """Scratch space for a component's wrapper Go module and build log."""
    return (root or cache_root()) / "build" / f"{component}-{version}"
