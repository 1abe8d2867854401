"""Exported spans (`observability.spans`): when export is on, the ids are the W3C trace context's
own (so parents and children line up across services), kinds and attributes follow OpenTelemetry's
semantic conventions, unsampled traces are not exported; when it is off, nothing records."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from keelson_services.app import create_app
from keelson_services.events import traced
from keelson_services.http import ServiceClient
from keelson_services.messaging import Envelope, EventProducer, RetryingConsumer
from keelson_services.messaging.schedule import subscription
from keelson_services.observability import spans, tracing
from keelson_services.observability.spans import ExportConfig
from tests.unit.svc_helpers import settings

TRACE, CALLER = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TOPIC = "ecommerce.order.paid"
OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    spans.reset()
    yield
    spans.reset()


@pytest.fixture
def exported() -> InMemorySpanExporter:
    """Every service's spans, recorded in memory as the OTLP exporter would get them."""
    exporter = InMemorySpanExporter()
    for service in ("gateway", "orders", "payments", "notifications"):
        spans.install(service, SimpleSpanProcessor(exporter))
    return exporter


def by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


def ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) as the W3C header writes them."""
    assert span.context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, False),  # no endpoint: nothing is assumed
    ],
)
def test_export_is_on_only_with_an_endpoint_and_not_disabled(env: dict[str, str], on: bool) -> None:
    assert (ExportConfig.from_env(env) is not None) is on


@pytest.mark.parametrize(
    ("sampler", "arg", "ratio"),
    [
        (None, None, 1.0),
        ("parentbased_traceidratio", "0.25", 0.25),
        ("traceidratio", "0", 0.0),
        ("parentbased_always_off", None, 0.0),
        ("parentbased_traceidratio", "2", 1.0),  # out of range: every trace, as the SDK does
        ("parentbased_traceidratio", "lots", 1.0),
    ],
)
def test_the_sampler_variables_give_the_ratio_of_new_traces(sampler: str | None, arg: str | None, ratio: float) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    if sampler:
        env["OTEL_TRACES_SAMPLER"] = sampler
    if arg:
        env["OTEL_TRACES_SAMPLER_ARG"] = arg
    config = ExportConfig.from_env(env)
    assert config is not None and config.root_ratio == ratio


def test_new_traces_are_sampled_by_ratio_and_continued_ones_follow_the_caller() -> None:
    tracing.set_root_sampling(0.0)
    assert not any(tracing.TraceContext.new().sampled for _ in range(50))
    assert tracing.continue_or_start(f"00-{TRACE}-{CALLER}-01").sampled  # the caller decided
    tracing.set_root_sampling(0.5)
    roots = [tracing.TraceContext.new() for _ in range(400)]
    assert 100 < sum(r.sampled for r in roots) < 300
    # decided from the trace id, as OpenTelemetry's TraceIdRatioBased does
    assert all(r.sampled == (int(r.trace_id[16:], 16) < 2**63) for r in roots)
    tracing.set_root_sampling(1.0)
    assert all(tracing.TraceContext.new().sampled for _ in range(50))


async def test_off_no_recorder_and_the_consumer_handlers_are_not_wrapped() -> None:
    assert spans.recorder("orders") is None

    async def handler(_: Envelope) -> None:
        return None

    consumer = RetryingConsumer(
        bootstrap_servers="127.0.0.1:1",
        group_id="shop.orders",
        service="orders",
        subscriptions=[subscription(TOPIC, "orders", backoff_seconds=(1,), max_retries=1)],
        handlers={TOPIC: handler},
    )
    await consumer.stop()
    assert consumer._spans is None
    assert all(route.handler is handler for route in consumer._routes.values())  # no per-message work
    async with ServiceClient(service="orders", base_urls={}) as client:
        assert client._spans is None
    producer = EventProducer(bootstrap_servers="127.0.0.1:1", source="orders")
    await producer.stop()
    assert producer._spans is None


async def test_on_one_batching_otlp_exporter_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=shop,k8s.namespace.name=shop-ns")
    orders = spans.recorder("orders")
    assert orders is not None and spans.recorder("orders") is orders
    assert isinstance(orders.processor, BatchSpanProcessor)
    assert orders.resource.attributes["service.name"] == "orders"
    assert orders.resource.attributes["service.namespace"] == "shop"
    assert orders.resource.attributes["k8s.namespace.name"] == "shop-ns"
    assert not tracing.TraceContext.new().sampled  # the ratio of new traces, from the sampler variables
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-eu")  # the platform's explicit name wins
    payments = spans.recorder("payments")
    assert payments is not None and payments.resource.attributes["service.name"] == "orders-eu"
    await spans.flush()  # nothing waits: returns at once


# --- HTTP -------------------------------------------------------------------------------------


def orders_app(payments: httpx.MockTransport) -> tuple[FastAPI, ServiceClient]:
    client = ServiceClient(
        service="orders", base_urls={"payments": "http://payments.shop.svc:8080"}, transport=payments
    )
    router = APIRouter()

    @router.post("/api/v1/orders/{order_id}/pay")
    async def pay(order_id: str) -> dict[str, int]:
        response = await client.post("payments", "/api/v1/payments", json={"order": order_id}, retry=False)
        return {"payments": response.status_code}

    @router.get("/api/v1/broken")
    async def broken() -> None:
        raise RuntimeError("bug")

    return create_app(settings("orders"), title="orders", routers=[router], configure_logs=False), client


async def test_a_request_and_its_call_are_a_server_span_and_its_client_child(exported: InMemorySpanExporter) -> None:
    sent: list[httpx.Request] = []

    def payments(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201)

    app, client = orders_app(httpx.MockTransport(payments))
    async with client, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as http:
        response = await http.post("/api/v1/orders/o-1/pay", headers={"traceparent": f"00-{TRACE}-{CALLER}-01"})
        await http.get("/healthz")  # probes are not traced
    assert response.status_code == 200
    (server,) = by_kind(exported, SpanKind.SERVER)
    (call,) = by_kind(exported, SpanKind.CLIENT)
    answered = tracing.parse(response.headers["traceparent"])
    downstream = tracing.parse(sent[0].headers["traceparent"])
    assert answered is not None and downstream is not None
    assert ids(server) == (TRACE, answered.span_id, CALLER)  # a child of the caller's span
    assert ids(call) == (TRACE, downstream.span_id, answered.span_id)  # the header payments got
    assert server.name == "POST /api/v1/orders/{order_id}/pay"
    assert dict(server.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/api/v1/orders/o-1/pay",
        "http.route": "/api/v1/orders/{order_id}/pay",
        "http.response.status_code": 200,
    }
    assert server.parent is not None and server.parent.is_remote
    assert server.status.status_code == StatusCode.UNSET
    assert call.name == "POST"
    assert dict(call.attributes or {}) == {
        "http.request.method": "POST",
        "url.full": "http://payments.shop.svc:8080/api/v1/payments",
        "server.address": "payments.shop.svc",
        "server.port": 8080,
        "peer.service": "payments",
        "http.response.status_code": 201,
    }
    assert server.resource.attributes["service.name"] == "orders"
    assert server.start_time is not None and server.end_time is not None
    assert call.start_time is not None and call.end_time is not None
    assert server.start_time <= call.start_time <= call.end_time <= server.end_time


async def test_failed_requests_and_calls_are_marked_with_their_error(exported: InMemorySpanExporter) -> None:
    def payments(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app, client = orders_app(httpx.MockTransport(payments))
    async with client, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as http:
        assert (await http.post("/api/v1/orders/o-1/pay")).status_code == 503
        assert (await http.get("/api/v1/broken")).status_code == 500
        assert (await http.get("/api/v1/nowhere")).status_code == 404
    (call,) = by_kind(exported, SpanKind.CLIENT)
    assert call.status.status_code == StatusCode.ERROR and call.status.description == "ConnectError"
    assert (call.attributes or {})["error.type"] == "unreachable"
    assert "http.response.status_code" not in (call.attributes or {})
    failed_call, bug, missing = by_kind(exported, SpanKind.SERVER)
    assert (failed_call.attributes or {})["error.type"] == "503"
    assert bug.status.status_code == StatusCode.ERROR and (bug.attributes or {})["error.type"] == "RuntimeError"
    assert missing.name == "GET" and missing.status.status_code == StatusCode.UNSET  # a 4xx is the client's
    assert ids(call)[2] == ids(failed_call)[1]


async def test_a_timed_out_attempt_is_a_failed_client_span(exported: InMemorySpanExporter) -> None:
    async def slow(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return httpx.Response(200)

    async with ServiceClient(
        service="orders", base_urls={"payments": "http://payments"}, transport=httpx.MockTransport(slow)
    ) as client:
        client.timeout_seconds = 0.01
        with pytest.raises(Exception, match="payments"):
            await client.post("payments", "/api/v1/payments", retry=False)
    (call,) = by_kind(exported, SpanKind.CLIENT)
    assert (call.attributes or {})["error.type"] == "timeout"
    assert ids(call)[2] is None  # no request being served: the root of a new trace


async def test_an_unsampled_trace_is_propagated_but_not_exported(exported: InMemorySpanExporter) -> None:
    sent: list[httpx.Request] = []

    def payments(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201)

    app, client = orders_app(httpx.MockTransport(payments))
    async with client, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as http:
        response = await http.post("/api/v1/orders/o-1/pay", headers={"traceparent": f"00-{TRACE}-{CALLER}-00"})
    assert response.status_code == 200
    assert sent[0].headers["traceparent"].endswith("-00")
    assert exported.get_finished_spans() == ()


# --- Kafka ------------------------------------------------------------------------------------


async def test_a_published_event_is_a_producer_span_whose_id_the_message_carries(
    exported: InMemorySpanExporter,
) -> None:
    producer = EventProducer(bootstrap_servers="127.0.0.1:1", source="orders", domain="ecommerce")
    messages: list[dict[str, Any]] = []

    async def send(topic: str, **message: Any) -> asyncio.Future[None]:
        messages.append({"topic": topic, **message})
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    producer.send = send  # type: ignore[method-assign]
    outbox_writer = tracing.TraceContext(TRACE, CALLER)  # the request that wrote the outbox row
    envelope = await producer.publish("order.paid", {"orderId": "o-1"}, key="o-1", trace=outbox_writer)
    await producer.stop()
    (span,) = by_kind(exported, SpanKind.PRODUCER)
    carried = tracing.parse(dict(messages[0]["headers"])["traceparent"])
    assert carried is not None
    assert ids(span) == (TRACE, carried.span_id, CALLER)
    assert span.name == f"send {TOPIC}"
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": TOPIC,
        "messaging.kafka.message.key": "o-1",
        "messaging.message.id": envelope.id,
    }


async def test_a_handled_message_is_a_consumer_span_current_while_its_handler_runs(
    exported: InMemorySpanExporter,
) -> None:
    seen: list[tracing.TraceContext | None] = []

    async def handler(_: Envelope) -> None:
        seen.append(tracing.current())
        if len(seen) == 2:
            raise RuntimeError("not now")

    consumer = RetryingConsumer(
        bootstrap_servers="127.0.0.1:1",
        group_id="shop.notifications",
        service="notifications",
        subscriptions=[subscription(TOPIC, "notifications", backoff_seconds=(1,), max_retries=1)],
        handlers={TOPIC: traced(handler)},  # in an exported span already: traced adds none
    )
    producer_span = f"00-{TRACE}-{CALLER}-01"
    value = Envelope("event-1", TOPIC, datetime.now(UTC), "orders", {}).to_json()
    records = [
        SimpleNamespace(
            headers=[("traceparent", producer_span.encode())], value=value, topic=TOPIC, partition=0, offset=0
        ),
        SimpleNamespace(
            headers=[("traceparent", producer_span.encode())], value=value, topic=TOPIC, partition=0, offset=1
        ),
        SimpleNamespace(headers=[], value=value, topic=TOPIC, partition=0, offset=2),
    ]
    failures: list[Any] = []
    await consumer._handle(consumer._routes[TOPIC], records, failures)
    await consumer.stop()
    assert len(failures) == 1
    first, failed, untraced = by_kind(exported, SpanKind.CONSUMER)
    assert ids(first)[0] == TRACE and ids(first)[2] == CALLER  # a child of the PRODUCER span
    assert seen[0] == tracing.TraceContext(TRACE, ids(first)[1])  # the handler runs in it
    assert first.name == f"process {TOPIC}" and first.parent is not None and first.parent.is_remote
    assert dict(first.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": TOPIC,
        "messaging.consumer.group.name": "shop.notifications",
        "messaging.message.id": "event-1",
    }
    assert failed.status.status_code == StatusCode.ERROR and (failed.attributes or {})["error.type"] == "RuntimeError"
    assert ids(untraced)[0] != TRACE and ids(untraced)[2] is None  # no traceparent: a new trace
    assert tracing.current() is None
