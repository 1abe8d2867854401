import asyncio

import pytest

from keelson_services.messaging import traceparent
from keelson_services.messaging.traceparent import TraceContext, parse

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_parse_and_format_round_trip() -> None:
    ctx = parse(VALID)
    assert ctx == TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", sampled=True)
    assert ctx.header() == VALID
    assert parse(VALID.encode()) == ctx
    assert parse(VALID[:-2] + "00") == TraceContext(ctx.trace_id, ctx.span_id, sampled=False)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # invalid trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # invalid span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        VALID + "-extra",  # version 00 has no more fields
        b"\xff" * 55,
    ],
)
def test_invalid_values_start_a_new_trace(value: str | bytes | None) -> None:
    assert parse(value) is None


def test_future_versions_are_read_as_far_as_understood() -> None:
    assert parse("01" + VALID[2:] + "-what-comes-next") is not None
    assert parse("01" + VALID[2:] + "x") is None


def test_children_share_the_trace_with_a_new_span() -> None:
    parent = TraceContext.new()
    child = parent.child()
    assert len(parent.trace_id) == 32 and len(parent.span_id) == 16
    assert child.trace_id == parent.trace_id and child.span_id != parent.span_id
    assert parse(child.header()) == child


def test_outgoing_continues_the_message_being_handled() -> None:
    assert traceparent.current() is None
    fresh = traceparent.outgoing()
    assert fresh.trace_id != traceparent.outgoing().trace_id  # no current message: new traces
    token = traceparent.enter(VALID.encode())
    try:
        assert traceparent.current() == parse(VALID)
        assert traceparent.outgoing().trace_id == parse(VALID).trace_id  # type: ignore[union-attr]
        explicit = TraceContext.new()
        assert traceparent.outgoing(explicit).trace_id == explicit.trace_id
    finally:
        traceparent.leave(token)
    assert traceparent.current() is None


async def test_the_current_message_is_per_task() -> None:
    seen: dict[str, str | None] = {}

    async def handle(name: str, raw: bytes) -> None:
        token = traceparent.enter(raw)
        await asyncio.sleep(0)
        ctx = traceparent.current()
        seen[name] = ctx.trace_id if ctx else None
        traceparent.leave(token)

    other = TraceContext.new()
    await asyncio.gather(handle("a", VALID.encode()), handle("b", other.header().encode()))
    assert seen == {"a": "0af7651916cd43dd8448eb211c80319c", "b": other.trace_id}


def test_events_published_while_serving_a_request_continue_its_trace() -> None:
    from keelson_services.observability import tracing as http

    request = http.TraceContext.new()
    with http.activated(request):
        assert traceparent.outgoing().trace_id == request.trace_id
        token = traceparent.enter(VALID.encode())  # a message being handled wins
        try:
            assert traceparent.outgoing().trace_id == "0af7651916cd43dd8448eb211c80319c"
        finally:
            traceparent.leave(token)
    assert traceparent.outgoing().trace_id != request.trace_id
