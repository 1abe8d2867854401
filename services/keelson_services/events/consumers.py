"""Running a service's `RetryingConsumer` beside its HTTP server.

The consumer starts in the background: the brokers may come up after the service, or the
operator may not have created the subscription's topics yet (`MissingTopics`), and neither should
stop the service from serving its HTTP API. `ConsumerRunner` starts the consumer, runs it, and
after a failure builds a new one and tries again; stopping it lets the consumer finish and commit
the batch in hand.

The consumer itself makes the consumed message's trace the current one (`observability.tracing`),
so a handler's logs, its outgoing calls (`ServiceClient`) and the events it writes to the outbox
all continue the trace of the event that caused them. `traced(handler)` adds a span of the
handler's own, a child of the message's (or a new trace for a message without one); when spans are
exported, the consumer's CONSUMER span is that span already (`observability.spans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from keelson_services.messaging import Envelope, Handler, RetryingConsumer
from keelson_services.observability import spans, tracing

log = logging.getLogger("keelson.consumer")


def traced(handler: Handler) -> Handler:
    async def run(event: Envelope) -> None:
        if spans.in_consumer_span():  # the consumer already runs it in an exported span of its own
            await handler(event)
            return
        incoming = tracing.current()
        with tracing.activated(incoming.child() if incoming is not None else tracing.TraceContext.new()):
            await handler(event)

    return run


class ConsumerRunner:
    def __init__(
        self,
        build: Callable[[], RetryingConsumer],
        *,
        name: str,
        retry_seconds: float = 2.0,
        stop_seconds: float = 10.0,
    ) -> None:
        self._build = build
        self.name = name
        self.retry_seconds = retry_seconds
        self.stop_seconds = stop_seconds
        self.running = asyncio.Event()  # set while a consumer is started and consuming
        self._consumer: RetryingConsumer | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-consumer")

    async def stop(self) -> None:
        self._stopping = True
        if self._consumer is not None:
            self._consumer.request_stop()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.stop_seconds)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            consumer = self._build()
            try:
                await consumer.start()
            except Exception as exc:
                log.warning("%s: consumer not started (%s: %s); trying again", self.name, type(exc).__name__, exc)
                await asyncio.sleep(self.retry_seconds)
                continue
            self._consumer = consumer
            self.running.set()
            try:
                if self._stopping:
                    return
                await consumer.run()
                if self._stopping:
                    return
            except Exception:
                log.exception("%s: consumer failed; starting a new one", self.name)
            finally:
                self.running.clear()
                self._consumer = None
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self.retry_seconds)
