"""Logs, metrics, health and tracing for the reference services.

The names below are imported on first use, so that `observability.tracing`, which `messaging`
uses, can be imported without loading the web stack (the middleware, health)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keelson_services.observability.health import Readiness
    from keelson_services.observability.logs import JsonFormatter, configure_logging
    from keelson_services.observability.middleware import ObservabilityMiddleware
    from keelson_services.observability.tracing import TraceContext

_EXPORTS = {
    "JsonFormatter": "logs",
    "ObservabilityMiddleware": "middleware",
    "Readiness": "health",
    "TraceContext": "tracing",
    "configure_logging": "logs",
}
__all__ = ["JsonFormatter", "ObservabilityMiddleware", "Readiness", "TraceContext", "configure_logging"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
