"""Logs, metrics, health and tracing for the reference services."""

from keelson_services.observability.health import Readiness
from keelson_services.observability.logs import JsonFormatter, configure_logging
from keelson_services.observability.middleware import ObservabilityMiddleware
from keelson_services.observability.tracing import TraceContext

__all__ = ["JsonFormatter", "ObservabilityMiddleware", "Readiness", "TraceContext", "configure_logging"]
