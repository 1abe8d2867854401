"""Structured logs: one JSON object per line on stderr, stamped with the service and the current
trace and span ids, so a journey can be followed across services by its trace id.

`configure_logging` owns the root logger (uvicorn's loggers included); call it once at start-up.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from keelson_services.observability import tracing

# The attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
# uvicorn's `color_message` repeats the message with terminal colour codes.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}
# Libraries that log every request at INFO: the access log and the client metrics say it better.
_CHATTY = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = tracing.current()
        if context is not None:
            entry["trace_id"] = context.trace_id
            entry["span_id"] = context.span_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, *, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger through one JSON handler; idempotent, so app factories may call it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn installs handlers of its own; let its records reach the JSON one instead.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The access log is written by the observability middleware, with trace ids and durations.
    logging.getLogger("uvicorn.access").disabled = True
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
