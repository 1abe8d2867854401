"""The events helpers without I/O: which trace an outbox event continues, and `traced` handlers
continuing the consumed message's trace in the HTTP tracing that logs and calls use."""

from __future__ import annotations

from datetime import UTC, datetime

from keelson_services.events import traced
from keelson_services.events.outbox import current_traceparent
from keelson_services.messaging import Envelope
from keelson_services.messaging import traceparent as message_trace
from keelson_services.observability import tracing

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{SPAN}-01"


def test_an_event_continues_the_request_s_trace_else_the_consumed_message_s() -> None:
    assert current_traceparent() is None
    token = message_trace.enter(HEADER.encode())
    try:
        assert current_traceparent() == HEADER
        with tracing.activated(tracing.TraceContext("1" * 32, "2" * 16)):
            assert current_traceparent() == f"00-{'1' * 32}-{'2' * 16}-01"
    finally:
        message_trace.leave(token)


async def test_a_traced_handler_runs_in_a_child_span_of_the_message() -> None:
    seen: list[tracing.TraceContext | None] = []

    async def handler(_: Envelope) -> None:
        seen.append(tracing.current())

    event = Envelope("e", "ecommerce.order.paid", datetime.now(UTC), "orders", {})
    token = message_trace.enter(HEADER.encode())
    try:
        await traced(handler)(event)
    finally:
        message_trace.leave(token)
    await traced(handler)(event)  # no incoming trace: a new one
    first, second = seen
    assert first is not None and first.trace_id == TRACE and first.span_id != SPAN
    assert second is not None and second.trace_id != TRACE
    assert tracing.current() is None
