"""W3C Trace Context for HTTP: the current request's trace, readable anywhere in its task.

A small self-contained implementation (no OpenTelemetry SDK): every request either continues
the trace of its incoming `traceparent` or starts one, gets a span id of its own, and every call
it makes goes out as a child span. Logs read the current context to stamp `trace_id`, so one
trace id ties together the log lines of every hop of a journey. When the platform configures an
OTLP endpoint, `observability.spans` exports these same spans (same ids) to a tracing backend.

Sampling: a continued trace keeps its caller's sampled flag; a trace started here is sampled with
the ratio `set_root_sampling` was given (1.0 unless `spans` read `OTEL_TRACES_SAMPLER`), decided
from its trace id as OpenTelemetry's `TraceIdRatioBased` does.

This is the services' one trace context: the HTTP middleware makes a request's current, the
Kafka consumer (`messaging`) a consumed message's, and the HTTP client, the JSON logs, the outbox
and the event producer all read it from here. It imports nothing of the web stack, so that
`messaging` can use it without loading it.

    traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

TRACEPARENT = HEADER = "traceparent"
TRACESTATE = "tracestate"
TRACE_ID_HEADER = "x-trace-id"  # for people reading responses; services read only traceparent

_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16
_MAX_TRACESTATE = 512  # W3C: a vendor list of up to 32 entries; longer values may be dropped
_ALL = 1 << 64
# Traces started here are sampled when the low 64 bits of their trace id are below this bound.
_root_bound = _ALL


def set_root_sampling(ratio: float) -> None:
    """Sample traces started here with probability `ratio` (0 to 1); continued traces follow
    their caller's flag."""
    global _root_bound  # noqa: PLW0603 - one process-wide setting, read per new trace
    _root_bound = round(min(max(ratio, 0.0), 1.0) * _ALL)


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None

    @classmethod
    def new(cls, *, sampled: bool | None = None) -> TraceContext:
        """The root span of a new trace; `sampled` None: by the root sampling ratio."""
        trace_id = secrets.token_hex(16)
        if sampled is None:
            sampled = _root_bound >= _ALL or int(trace_id[16:], 16) < _root_bound
        return cls(trace_id, secrets.token_hex(8), sampled)

    def child(self) -> TraceContext:
        """The context of an operation caused by this one: same trace, new span."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.sampled, self.tracestate)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def headers(self) -> dict[str, str]:
        """`traceparent`, and `tracestate` when the caller sent one (W3C: pass it on unchanged)."""
        out = {TRACEPARENT: self.header()}
        if self.tracestate:
            out[TRACESTATE] = self.tracestate
        return out


def parse(value: str | bytes | None, tracestate: str | None = None) -> TraceContext | None:
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
    state = tracestate.strip() if tracestate and len(tracestate) <= _MAX_TRACESTATE else None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1), state or None)


def continue_or_start(traceparent: str | None, tracestate: str | None = None) -> TraceContext:
    """The server span of a request: a child of the caller's span, or the root of a new trace."""
    parent = parse(traceparent, tracestate)
    return parent.child() if parent else TraceContext.new()


# Holds a TraceContext, or the raw `traceparent` of the Kafka message being handled: the
# consumer's hot loop sets the raw header and it is parsed only when someone asks (most handlers
# never do), which keeps tracing out of the per-message cost.
_current: ContextVar[TraceContext | bytes | str | None] = ContextVar("keelson_trace", default=None)


def current() -> TraceContext | None:
    """The span this task works in (an HTTP request's or a consumed message's), if any."""
    value = _current.get()
    if value is None or isinstance(value, TraceContext):
        return value
    return parse(value)


def outgoing(parent: TraceContext | None = None) -> TraceContext:
    """The context to send with a call or an event: a child of `parent`, else of the current span,
    else a new trace."""
    parent = parent or current()
    return parent.child() if parent else TraceContext.new()


@contextmanager
def activated(context: TraceContext) -> Iterator[TraceContext]:
    """Make `context` current for the code inside (a request, a message handler)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def enter(context: TraceContext | bytes | str | None) -> Token[TraceContext | bytes | str | None]:
    """Make `context` (or a raw `traceparent` header, parsed lazily) current until
    `leave(token)`: for loops that switch contexts often (the Kafka consumer, once per message);
    elsewhere use `activated`."""
    return _current.set(context)


def leave(token: Token[TraceContext | bytes | str | None]) -> None:
    _current.reset(token)
