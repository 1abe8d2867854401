"""Spans exported over OTLP/HTTP, end to end: the five reference services in one process
(`e2e.svc_shop`), exporting to a small in-process OTLP/HTTP receiver as they would to an
OpenTelemetry Collector, Jaeger or Tempo, with a real Kafka broker and PostgreSQL.

A client starts a trace and sends it with each request of a customer journey (register, log in,
order). The receiver must get the journey as ONE trace, linked hop by hop: the gateway's SERVER
span under the client's span, each CLIENT span (one per attempt) the parent of the callee's SERVER
span, each event's PRODUCER span the parent of the CONSUMER span that handled it (the consumer's
parent is the span id the message carried in its `traceparent`, which is the PRODUCER span's own
id), and each span under its own service's `service.name`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from e2e.svc_platform import kafka_bootstrap, wait_for
from e2e.svc_shop import RunningShop, running_shop
from keelson_services.observability import spans

__all__ = ["kafka_bootstrap"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TRACE = "5a1e0f7c3d2b4a6987f0e1d2c3b4a596"
CLIENT_SPANS = {"register": "1" * 16, "login": "2" * 16, "order": "3" * 16, "verify": "4" * 16}
SERVER, CLIENT = Span.SpanKind.SPAN_KIND_SERVER, Span.SpanKind.SPAN_KIND_CLIENT
PRODUCER, CONSUMER = Span.SpanKind.SPAN_KIND_PRODUCER, Span.SpanKind.SPAN_KIND_CONSUMER


@dataclass(frozen=True)
class Received:
    service: str
    resource: dict[str, Any]
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


@dataclass
class OtlpReceiver:
    """Accepts `POST /v1/traces` (OTLP/HTTP, protobuf) and keeps every span it was sent."""

    url: str = ""
    spans: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Received(
                            service=str(resource.get("service.name")),
                            resource=resource,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex() or None,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.spans.extend(received)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.spans)


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            receiver.keep(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """The services export here: the OpenTelemetry variables the operator renders, set before
    the apps are built (each component looks up its service's recorder when it is built)."""
    with otlp_receiver() as found:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=shop,k8s.namespace.name=shop-ns")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export within 50 ms rather than 5 s
        for name in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED"):
            monkeypatch.delenv(name, raising=False)
        spans.reset()
        try:
            yield found
        finally:
            spans.reset()


@pytest.fixture
async def traced_shop(kafka_bootstrap: str, receiver: OtlpReceiver) -> AsyncIterator[RunningShop]:
    async with running_shop(kafka_bootstrap) as running:
        yield running


def traceparent(step: str) -> dict[str, str]:
    return {"traceparent": f"00-{TRACE}-{CLIENT_SPANS[step]}-01"}


def one(found: list[Received], what: str) -> Received:
    assert len(found) == 1, f"{what}: {len(found)} span(s): {found}"
    return found[0]


async def test_the_journey_is_exported_as_one_linked_trace(traced_shop: RunningShop, receiver: OtlpReceiver) -> None:
    shop, client = traced_shop, traced_shop.client
    registered = await client.post(
        "/api/v1/users",
        json={"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"},
        headers=traceparent("register"),
    )
    assert registered.status_code == 201, registered.text
    login = await client.post(
        "/api/v1/auth/token",
        json={"email": "ada@example.com", "password": "correct horse battery"},
        headers=traceparent("login"),
    )
    assert login.status_code == 200, login.text
    await wait_for(lambda: len(shop.sink.messages) == 2, within=30)  # the welcome and verification emails
    token = await shop.sink.link_token("ada@example.com", "verify-email")
    verified = await client.post("/api/v1/auth/verify-email", json={"token": token}, headers=traceparent("verify"))
    assert verified.status_code == 204, verified.text
    placed = await client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "SKU-1", "quantity": 1}]},
        headers={
            "Authorization": f"Bearer {login.json()['access_token']}",
            "Idempotency-Key": "0b5a3c4e-1f2d-4e6a-9b8c-7d6e5f4a3b2c",
            **traceparent("order"),
        },
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "paid"

    def consumed(suffix: str, service: str) -> list[Received]:
        return [
            s
            for s in receiver.snapshot()
            if s.kind == CONSUMER
            and s.service == service
            and s.attributes["messaging.destination.name"].endswith(suffix)
        ]

    # Polled with a deadline: spans leave in batches, and events go through the outbox and Kafka.
    await wait_for(
        lambda: consumed(".order.paid", "notifications") and consumed(".payment.completed", "orders"), within=30
    )
    received = receiver.snapshot()

    # One trace: the client's. Nothing started a trace of its own along the way.
    assert {s.trace_id for s in received} == {TRACE}, sorted({(s.service, s.name, s.trace_id) for s in received})
    for s in received:
        assert s.resource["service.name"] == s.service
        assert s.resource["service.namespace"] == "shop" and s.resource["k8s.namespace.name"] == "shop-ns"
    by_id = {s.span_id: s for s in received}
    assert len(by_id) == len(received), "a span id was used twice"

    def children(parent: Received, kind: int, service: str) -> list[Received]:
        return [s for s in received if s.parent_id == parent.span_id and s.kind == kind and s.service == service]

    # The order: client -> gateway -> orders -> payments, one CLIENT span per hop in between.
    gateway = one(
        [s for s in received if s.kind == SERVER and s.service == "gateway" and s.parent_id == CLIENT_SPANS["order"]],
        "the gateway's SERVER span of the order",
    )
    assert gateway.name == "POST /api/v1/orders" and gateway.attributes["http.response.status_code"] == 201
    to_orders = one(
        [c for c in children(gateway, CLIENT, "gateway") if c.attributes["peer.service"] == "orders"],
        "the gateway's CLIENT span to orders",
    )
    orders = one(children(to_orders, SERVER, "orders"), "orders' SERVER span")
    assert orders.attributes["http.request.method"] == "POST" and orders.attributes["http.route"] == "/api/v1/orders"
    to_payments = one(
        [c for c in children(orders, CLIENT, "orders") if c.attributes["peer.service"] == "payments"],
        "orders' CLIENT span to payments",
    )
    assert to_payments.attributes["http.response.status_code"] == 201
    payments = one(children(to_payments, SERVER, "payments"), "payments' SERVER span")
    assert payments.attributes["http.response.status_code"] == 201

    # The events: each PRODUCER span a child of the request that wrote it to the outbox, and the
    # parent of the CONSUMER span that handled it.
    order_paid = one(
        [
            p
            for p in children(orders, PRODUCER, "orders")
            if p.attributes["messaging.destination.name"].endswith(".order.paid")
        ],
        "the PRODUCER span of order.paid",
    )
    assert order_paid.attributes["messaging.system"] == "kafka"
    assert order_paid.attributes["messaging.kafka.message.key"] == placed.json()["id"]
    notified = one(consumed(".order.paid", "notifications"), "notifications' CONSUMER span of order.paid")
    assert notified.parent_id == order_paid.span_id
    assert notified.attributes["messaging.message.id"] == order_paid.attributes["messaging.message.id"]
    payment_completed = one(
        [
            p
            for p in children(payments, PRODUCER, "payments")
            if p.attributes["messaging.destination.name"].endswith(".payment.completed")
        ],
        "the PRODUCER span of payment.completed",
    )
    settled = one(consumed(".payment.completed", "orders"), "orders' CONSUMER span of payment.completed")
    assert settled.parent_id == payment_completed.span_id

    # Registering and logging in: the gateway under the client's spans, users under the gateway.
    for step in ("register", "login"):
        edge = one(
            [s for s in received if s.kind == SERVER and s.service == "gateway" and s.parent_id == CLIENT_SPANS[step]],
            f"the gateway's SERVER span of {step}",
        )
        call = one(
            [c for c in children(edge, CLIENT, "gateway") if c.attributes["peer.service"] == "users"],
            f"the gateway's CLIENT span to users ({step})",
        )
        one(children(call, SERVER, "users"), f"users' SERVER span ({step})")

    # Every parent is in the trace, but for the client's own spans: no hole in the tree.
    missing = {s.parent_id for s in received if s.parent_id is not None} - set(by_id) - set(CLIENT_SPANS.values())
    assert not missing, [s for s in received if s.parent_id in missing]
