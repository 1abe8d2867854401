"""The W3C Trace Context (`traceparent`) of Kafka messages: a thin layer over
`keelson_services.observability.tracing`, the services' one implementation and one current context.

    traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>

A consumer makes the incoming message's context current while its handler runs (in the same
context variable the HTTP client and the JSON logs read); the producer publishes as a child of
the current context (the message being handled, else the HTTP request being served), or starts a
new trace when there is none.
"""

from __future__ import annotations

from contextvars import Token

from keelson_services.observability.tracing import HEADER, TraceContext, current, leave, outgoing, parse
from keelson_services.observability.tracing import enter as _enter

__all__ = ["HEADER", "TraceContext", "current", "enter", "leave", "outgoing", "parse"]


def enter(raw: str | bytes | None) -> Token[TraceContext | bytes | str | None]:
    """Make the context in a raw `traceparent` value current (none when it is absent or invalid)
    until `leave(token)`; it is parsed when first asked for."""
    return _enter(raw)
