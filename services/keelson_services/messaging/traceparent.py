"""A tiny W3C Trace Context (`traceparent`) helper, enough to carry traces through Kafka until
the services adopt OpenTelemetry (whose propagator reads and writes the same header).

    traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>

A consumer makes the incoming message's context current while its handler runs; the producer
publishes as a child of the current context, or starts a new trace when there is none.
"""

from __future__ import annotations

import re
import secrets
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass

HEADER = "traceparent"
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16

# The raw header of the message being handled; parsed only if something asks for it, so that
# handlers which publish nothing pay nothing.
_incoming: ContextVar[bytes | None] = ContextVar("keelson_incoming_traceparent", default=None)


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    sampled: bool = True

    @classmethod
    def new(cls, *, sampled: bool = True) -> TraceContext:
        return cls(secrets.token_hex(16), secrets.token_hex(8), sampled)

    def child(self) -> TraceContext:
        """The context of an operation caused by this one: same trace, new span."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.sampled)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse(value: str | bytes | None) -> TraceContext | None:
    """The context in a `traceparent` value, or None when it is absent or invalid (W3C: a
    receiver that cannot parse it starts a new trace)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip()
    match = _FORMAT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    # Version 00 is exactly 55 characters; later versions may append fields after a dash.
    if (version == "00" and len(value) != 55) or (len(value) > 55 and value[55] != "-"):
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def current() -> TraceContext | None:
    """The trace context of the message being handled in this task, if any."""
    return parse(_incoming.get())


def outgoing(parent: TraceContext | None = None) -> TraceContext:
    """The context to publish with: a child of `parent`, else of the message being handled, else
    of the HTTP request being served, else a new trace."""
    parent = parent or current() or _http_request()
    return parent.child() if parent else TraceContext.new()


def _http_request() -> TraceContext | None:
    # The services' HTTP side keeps its request's context in observability.tracing. Read it only
    # if that module is loaded: messaging must not pull in the web stack.
    http = sys.modules.get("keelson_services.observability.tracing")
    request = http.current() if http else None
    return TraceContext(request.trace_id, request.span_id, request.sampled) if request else None


def enter(raw: bytes | None) -> Token[bytes | None]:
    return _incoming.set(raw)


def leave(token: Token[bytes | None]) -> None:
    _incoming.reset(token)
