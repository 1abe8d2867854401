"""W3C trace context: parsing, continuing a caller's trace, answering with it, stamping logs
with it, and passing it on to downstream calls."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from keelson_services.app import create_app
from keelson_services.http import ServiceClient
from keelson_services.observability import tracing
from keelson_services.observability.logs import JsonFormatter
from tests.unit.svc_helpers import settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE}-0000000000000000-01",  # all-zero span id
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has no extra fields
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # lowercase hex only
    ],
)
def test_invalid_traceparents_are_ignored(value: str | None) -> None:
    assert tracing.parse(value) is None


def test_a_valid_traceparent_is_continued_as_a_child_span() -> None:
    parsed = tracing.parse(PARENT, "vendor=x")
    assert parsed is not None and parsed.trace_id == TRACE and parsed.sampled and parsed.tracestate == "vendor=x"
    child = tracing.continue_or_start(PARENT)
    assert child.trace_id == TRACE and child.span_id != parsed.span_id
    assert tracing.parse(f"01-{TRACE}-00f067aa0ba902b7-00-future") is not None  # later versions may add fields


def app_calling(downstream: httpx.MockTransport) -> tuple[FastAPI, ServiceClient]:
    client = ServiceClient(service="orders", base_urls={"payments": "http://payments"}, transport=downstream)
    router = APIRouter()

    @router.get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("test.work").info("working")
        await client.get("payments", "/charge")
        context = tracing.current()
        assert context is not None
        return {"trace_id": context.trace_id}

    return create_app(settings("orders"), title="t", routers=[router], configure_logs=False), client


async def test_a_request_continues_the_callers_trace_and_passes_it_downstream() -> None:
    sent: list[httpx.Request] = []

    def payments(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    app, client = app_calling(httpx.MockTransport(payments))
    async with client, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/work", headers={"traceparent": PARENT, "tracestate": "vendor=x"})
    assert response.json() == {"trace_id": TRACE}
    assert response.headers["x-trace-id"] == TRACE
    server_span = tracing.parse(response.headers["traceparent"])
    assert server_span is not None and server_span.trace_id == TRACE and server_span.span_id != "00f067aa0ba902b7"
    outgoing = tracing.parse(sent[0].headers["traceparent"])
    assert outgoing is not None and outgoing.trace_id == TRACE and outgoing.span_id != server_span.span_id
    assert sent[0].headers["tracestate"] == "vendor=x"


async def test_a_request_without_a_trace_starts_one() -> None:
    app, client = app_calling(httpx.MockTransport(lambda r: httpx.Response(200)))
    async with client, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        first, second = await http.get("/work"), await http.get("/work", headers={"traceparent": "bogus"})
    assert first.json()["trace_id"] != second.json()["trace_id"]
    assert first.headers["x-trace-id"] == first.json()["trace_id"]


async def test_logs_are_json_lines_with_the_service_and_trace_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("orders"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        app, client = app_calling(httpx.MockTransport(lambda r: httpx.Response(200)))
        async with client, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            await http.get("/work", headers={"traceparent": PARENT})
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    work = next(line for line in lines if line["message"] == "working")
    access = next(line for line in lines if line["logger"] == "keelson.access")
    assert work["service"] == "orders" and work["trace_id"] == TRACE and work["level"] == "info"
    assert access["trace_id"] == TRACE and access["status"] == 200 and access["path"] == "/work"
    assert "duration_ms" in access
