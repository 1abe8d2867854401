"""Optional, service-specific settings from the environment (`KEELSON_<SERVICE>_...`), each with
a documented default. The settings every service gets from the operator are in `settings.py`."""

from __future__ import annotations

from collections.abc import Mapping

from keelson_services.settings import SettingsError


def text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def whole(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    value = number(env, name, default, minimum=minimum)
    if value != int(value):
        raise SettingsError(f"{name} must be a whole number, got {env.get(name)!r}")
    return int(value)
