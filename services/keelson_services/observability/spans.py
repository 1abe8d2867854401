"""Exporting the services' spans to an OpenTelemetry backend over OTLP/HTTP.

`tracing` stays the services' one trace context; this module only records what its spans did,
under the same ids, so that a backend (an OpenTelemetry Collector, Jaeger, Tempo) shows a journey
across services as one trace. Export is on when the standard OpenTelemetry variables say so:
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and
`OTEL_TRACES_EXPORTER` is not `none` (`OTEL_SDK_DISABLED=true` turns it off as well). The SDK's
exporter reads the other OTLP variables (headers, timeout, compression, certificates); the
resource comes from `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` (`service.name` defaults
to the service's own name); `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` give the ratio of
the traces started here (`tracing.set_root_sampling`; continued traces keep their caller's flag).

Components ask for their service's recorder once, when they are built (`recorder(service)`), and
record through it only when they got one: with export off nothing of OpenTelemetry is imported,
and each hook is one `is None` check, never per-message work. Spans of unsampled traces are not
exported.

The spans, named and attributed after OpenTelemetry's semantic conventions: SERVER per request
(`middleware`), CLIENT per attempt (`http.client`), PRODUCER per event published
(`messaging.producer`; its span id is the `traceparent` the message carries) and CONSUMER per
message handled (`messaging.consumer`; a child of that PRODUCER span, and current while the
handler runs). Finished spans are batched and sent by the SDK's `BatchSpanProcessor` in a thread
of its own; `flush()`, at the end of every service's lifespan (`lifecycle.running`), sends what
still waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from keelson_services.observability import tracing
from keelson_services.observability.tracing import TraceContext

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor

log = logging.getLogger("keelson.spans")

SCOPE = "keelson_services"
Kind = Literal["server", "client", "producer", "consumer"]
AttributeValue = str | int | float | bool
FLUSH_SECONDS = 5.0


def root_sampling_ratio(env: Mapping[str, str]) -> float:
    """The share of traces started here to sample, from `OTEL_TRACES_SAMPLER`/`_ARG`; the
    parent-based samplers' root rule (a continued trace always follows its caller)."""
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if sampler in ("always_off", "parentbased_always_off"):
        return 0.0
    if sampler not in ("traceidratio", "parentbased_traceidratio"):
        return 1.0
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        log.warning("OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, got %r: sampling every trace", raw)
        return 1.0
    return ratio


@dataclass(frozen=True)
class ExportConfig:
    """Where spans go, read from the standard OpenTelemetry variables."""

    endpoint: str
    root_ratio: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExportConfig | None:
        """None when export is off: no endpoint, `OTEL_TRACES_EXPORTER` without `otlp`, or the
        SDK disabled."""
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        exporters = {name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",")} - {""}
        if exporters and "otlp" not in exporters:  # "none", or an exporter this library does not ship
            return None
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        endpoint = endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not endpoint:
            return None
        return cls(endpoint, root_sampling_ratio(env))


def service_resource(service: str) -> Resource:
    """The SDK's resource (its defaults, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`), with
    `service.name` set to `service` when neither variable names one."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    detected = Resource.create()
    named = str(detected.attributes.get(SERVICE_NAME, ""))
    if named and not named.startswith("unknown_service"):
        return detected
    return detected.merge(Resource({SERVICE_NAME: service}))


class _Message(Protocol):
    @property
    def id(self) -> str: ...


M = TypeVar("M", bound=_Message)

# The CONSUMER span the consumer opened for the message being handled (see `in_consumer_span`).
_consumer_span: ContextVar[TraceContext | None] = ContextVar("keelson_consumer_span", default=None)


def in_consumer_span() -> bool:
    """Whether the current span is the one the consumer records for the message being handled,
    so a handler wrapper need not open another (`events.traced`)."""
    span = _consumer_span.get()
    return span is not None and span is tracing.current()


class SpanRecorder:
    """Records one service's finished spans into a span processor (batched OTLP export, or a
    test's in-memory one)."""

    def __init__(self, service: str, processor: SpanProcessor, resource: Resource | None = None) -> None:
        from opentelemetry import trace as api
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.service = service
        self.processor = processor
        self.resource = resource if resource is not None else service_resource(service)
        self._api = api
        self._span = ReadableSpan
        self._scope = InstrumentationScope(SCOPE)
        self._flags = api.TraceFlags(api.TraceFlags.SAMPLED)
        self._kinds: dict[Kind, api.SpanKind] = {
            "server": api.SpanKind.SERVER,
            "client": api.SpanKind.CLIENT,
            "producer": api.SpanKind.PRODUCER,
            "consumer": api.SpanKind.CONSUMER,
        }

    def record(
        self,
        name: str,
        kind: Kind,
        context: TraceContext,
        parent: TraceContext | None,
        *,
        start_ns: int,
        end_ns: int | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        """One finished span: `context` its own ids, `parent` the span it is a child of (None: a
        root). `error`: its `error.type`, which marks it failed. Unsampled spans are dropped."""
        if not context.sampled:
            return
        api = self._api
        trace_id = int(context.trace_id, 16)
        own = api.SpanContext(trace_id, int(context.span_id, 16), is_remote=False, trace_flags=self._flags)
        up = None
        if parent is not None:
            # A SERVER or CONSUMER span's parent is another process's; a CLIENT or PRODUCER
            # span's, this one's (the request or message being handled, or the outbox's writer).
            remote = kind in ("server", "consumer")
            up = api.SpanContext(trace_id, int(parent.span_id, 16), is_remote=remote, trace_flags=self._flags)
        values = dict(attributes or {})
        if error is not None:
            values["error.type"] = error
            status = api.Status(api.StatusCode.ERROR, description or error)
        else:
            status = api.Status(api.StatusCode.UNSET)
        span = self._span(
            name,
            own,
            up,
            self.resource,
            values,
            kind=self._kinds[kind],
            status=status,
            start_time=start_ns,
            end_time=end_ns if end_ns is not None else time.time_ns(),
            instrumentation_scope=self._scope,
        )
        self.processor.on_end(span)

    def server(
        self,
        context: TraceContext,
        parent: TraceContext | None,
        *,
        method: str,
        path: str,
        route: str | None,
        status: int,
        start_ns: int,
        error: str | None = None,
    ) -> None:
        """A request served: failed on a 5xx (a 4xx is the client's mistake, not the server's)."""
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": path,
            "http.response.status_code": status,
        }
        if route is not None:
            attributes["http.route"] = route
        failed = error or (str(status) if status >= 500 else None)
        name = f"{method} {route}" if route is not None else method
        self.record(name, "server", context, parent, start_ns=start_ns, attributes=attributes, error=failed)

    def client(
        self,
        context: TraceContext,
        parent: TraceContext | None,
        *,
        method: str,
        url: str,
        downstream: str,
        status: int | None,
        start_ns: int,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        """One attempt of a call to `downstream`: failed on a 4xx/5xx answer or without one
        (`error`: timeout, unreachable, ...)."""
        parts = urlsplit(url)
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.full": url,
            "server.address": parts.hostname or "",
            "peer.service": downstream,
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        if status is not None:
            attributes["http.response.status_code"] = status
            error = error or (str(status) if status >= 400 else None)
        self.record(
            method,
            "client",
            context,
            parent,
            start_ns=start_ns,
            attributes=attributes,
            error=error,
            description=description,
        )

    def producer(
        self,
        context: TraceContext,
        parent: TraceContext | None,
        *,
        topic: str,
        key: str,
        message_id: str,
        start_ns: int,
        error: str | None = None,
    ) -> None:
        """An event published (until the brokers acknowledged it)."""
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
            "messaging.message.id": message_id,
        }
        self.record(f"send {topic}", "producer", context, parent, start_ns=start_ns, attributes=attributes, error=error)

    def consumer(
        self,
        context: TraceContext,
        parent: TraceContext | None,
        *,
        topic: str,
        group: str,
        message_id: str,
        start_ns: int,
        error: str | None = None,
    ) -> None:
        """A message handled (failed when its handler raised: it goes on to a retry or the DLQ)."""
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": group,
            "messaging.message.id": message_id,
        }
        self.record(
            f"process {topic}", "consumer", context, parent, start_ns=start_ns, attributes=attributes, error=error
        )

    def consuming(
        self, handler: Callable[[M], Awaitable[None]], *, topic: str, group: str
    ) -> Callable[[M], Awaitable[None]]:
        """`handler` in a CONSUMER span of its own: a child of the message's `traceparent` (the
        PRODUCER span), or the root of a new trace, current while it runs."""

        async def run(message: M) -> None:
            parent = tracing.current()  # the message's, parsed from its header only now
            context = parent.child() if parent is not None else TraceContext.new()
            start_ns = time.time_ns()
            error: str | None = None
            marked = _consumer_span.set(context)
            try:
                with tracing.activated(context):
                    await handler(message)
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                _consumer_span.reset(marked)
                self.consumer(
                    context, parent, topic=topic, group=group, message_id=message.id, start_ns=start_ns, error=error
                )

        return run


_recorders: dict[tuple[str, ExportConfig], SpanRecorder] = {}
_installed: dict[str, SpanRecorder] = {}


def recorder(service: str) -> SpanRecorder | None:
    """The recorder of `service`'s spans, or None when export is off. Components call it once,
    when they are built."""
    found = _installed.get(service)
    if found is not None:
        return found
    config = ExportConfig.from_env()
    if config is None:
        return None
    found = _recorders.get((service, config))
    if found is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracing.set_root_sampling(config.root_ratio)
        # The exporter reads the endpoint and the other OTEL_EXPORTER_OTLP_* variables itself.
        found = SpanRecorder(service, BatchSpanProcessor(OTLPSpanExporter()))
        _recorders[(service, config)] = found
        log.info("tracing: exporting %s's spans to %s", service, config.endpoint)
    return found


def install(service: str, processor: SpanProcessor, resource: Resource | None = None) -> SpanRecorder:
    """Tests: record `service`'s spans into `processor` (e.g. a `SimpleSpanProcessor` over an
    `InMemorySpanExporter`) whatever the environment says, until `reset()`."""
    found = _installed[service] = SpanRecorder(service, processor, resource)
    return found


async def flush(timeout_seconds: float = FLUSH_SECONDS) -> None:
    """Send the spans that wait, of every recorder, waiting at most `timeout_seconds` (in a
    thread: the export is blocking I/O). A no-op when nothing records spans."""
    recorders = [*_recorders.values(), *_installed.values()]
    if not recorders:
        return

    def run() -> None:
        for found in recorders:
            found.processor.force_flush()

    try:
        await asyncio.wait_for(asyncio.to_thread(run), timeout_seconds)
    except TimeoutError:
        log.warning("tracing: spans not all exported within %g s", timeout_seconds)


def reset() -> None:
    """Tests: shut down and forget every recorder, and sample every new trace again."""
    recorders = [*_recorders.values(), *_installed.values()]
    _recorders.clear()
    _installed.clear()
    tracing.set_root_sampling(1.0)
    for found in recorders:
        found.processor.shutdown()
