"""Kafka messaging for the reference services: an envelope, a producer, and a consumer with
per-subscription retry topics and a DLQ (see docs/messaging.md).

The names below are imported on first use, so that `keelson`, which registers `keelson dlq` from
this package, does not load the Kafka client every time it starts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keelson_services.messaging.consumer import Handler, MissingTopics, PermanentError, RetryingConsumer
    from keelson_services.messaging.envelope import Envelope, MalformedEvent
    from keelson_services.messaging.producer import EventProducer, UndeclaredTopic
    from keelson_services.messaging.traceparent import TraceContext

_EXPORTS = {
    "Envelope": "envelope",
    "EventProducer": "producer",
    "Handler": "consumer",
    "MalformedEvent": "envelope",
    "MissingTopics": "consumer",
    "PermanentError": "consumer",
    "RetryingConsumer": "consumer",
    "TraceContext": "traceparent",
    "UndeclaredTopic": "producer",
}
__all__ = [
    "Envelope",
    "EventProducer",
    "Handler",
    "MalformedEvent",
    "MissingTopics",
    "PermanentError",
    "RetryingConsumer",
    "TraceContext",
    "UndeclaredTopic",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
