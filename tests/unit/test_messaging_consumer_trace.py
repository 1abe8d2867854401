"""The consumer makes a message's trace current where the HTTP client and the JSON logs read it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from keelson_services.messaging import Envelope, RetryingConsumer
from keelson_services.observability import tracing

TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


async def test_a_handler_sees_its_message_s_trace_in_observability_tracing() -> None:
    seen: list[tracing.TraceContext | None] = []

    async def handler(_: Envelope) -> None:
        seen.append(tracing.current())

    metric = SimpleNamespace(observe=lambda _: None)
    route: Any = SimpleNamespace(hop=SimpleNamespace(retries=0), handler=handler, handled=metric, failed=metric)
    value = Envelope("e", "ecommerce.order.paid", datetime.now(UTC), "orders", {}).to_json()
    records = [
        SimpleNamespace(headers=[("traceparent", f"00-{TRACE}-{SPAN}-01".encode())], value=value),
        SimpleNamespace(headers=[], value=value),
    ]
    consumer: Any = SimpleNamespace(_service_bytes=b"orders")
    request = tracing.TraceContext.new()
    with tracing.activated(request):
        await RetryingConsumer._handle(consumer, route, records, [])
        assert tracing.current() == request  # restored after the batch
    first, second = seen
    assert first == tracing.TraceContext(TRACE, SPAN)
    assert second is None  # a message without a trace does not continue the request's
