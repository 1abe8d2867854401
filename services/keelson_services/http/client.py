"""The resilient HTTP client services use to call each other.

One `ServiceClient` per service, shared by all requests (one connection pool). Every call:
- has a total deadline of the platform's timeout (`KEELSON_HTTP_TIMEOUT_SECONDS`);
- passes through the downstream's circuit breaker, which fails fast while open;
- is retried on timeouts, connection failures and 502/503/504, but only when the request is safe
  to repeat (see `retry.py`), and never once the breaker has opened;
- fits inside the current request's deadline when it has one, and passes what is left on
  (`deadline.py`): no attempt or retry outlives the caller's own wait;
- proves which service is calling with its token for that downstream (`callers`);
- carries the current trace as `traceparent` (a new child span per attempt, exported as a CLIENT
  span when spans are: `observability.spans`) and the identity the request acts for (`X-User-Id`,
  `X-User-Roles`).

4xx answers are the downstream working correctly, so they count as successes for the breaker
and come back to the caller like any response; so do 5xx answers once retries are used up. A 5xx
that names another failed service (`X-Keelson-Failed-Service`, see `errors.py`) is the downstream
passing on a failure further down: no verdict on the downstream, and no retry.

I/O goes through an injectable httpx transport: unit tests pass `httpx.MockTransport` or
`httpx.ASGITransport`, and time (the breaker's clock, the backoff's sleep and jitter) is
injectable too, so no test waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from keelson_services import identity
from keelson_services.callers import CallTokens
from keelson_services.http import deadline
from keelson_services.http.breaker import BreakerState, CircuitBreaker, MonotonicClock
from keelson_services.http.errors import (
    CircuitOpenError,
    DeadlineExceededError,
    DownstreamError,
    DownstreamTimeoutError,
    DownstreamUnreachableError,
    failed_service,
)
from keelson_services.http.retry import RETRYABLE_STATUSES, RetryPolicy, may_retry
from keelson_services.observability import spans, tracing
from keelson_services.observability.metrics import HttpClientMetrics, client_metrics
from keelson_services.settings import Settings

Sleep = Callable[[float], Awaitable[None]]


class ServiceClient:
    def __init__(
        self,
        *,
        service: str,
        base_urls: Mapping[str, str],
        timeout_seconds: float = 5.0,
        breaker_failures: int = 3,
        breaker_open_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        metrics: HttpClientMetrics | None = None,
        max_connections: int = 200,
        call_tokens: CallTokens | None = None,
    ) -> None:
        """`service`: this service's name (a metrics label); `base_urls`: downstream name to URL;
        `call_tokens`: this service's proof of who it is, per downstream (`callers`)."""
        self.service = service
        self._call_tokens = call_tokens
        self.base_urls = {name: url.rstrip("/") for name, url in base_urls.items()}
        self.timeout_seconds = timeout_seconds
        self.retry = retry or RetryPolicy()
        self._breaker_failures = breaker_failures
        self._breaker_open_seconds = breaker_open_seconds
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics or client_metrics()
        self._spans = spans.recorder(service)  # None unless spans are exported
        self._breakers: dict[str, CircuitBreaker] = {}
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ServiceClient:
        """A client for the downstreams in `KEELSON_SERVICE_URLS` (and, on the gateway, the route
        targets), with the platform's resilience settings."""
        urls = {route.service: route.url for route in settings.routes} | dict(settings.service_urls)
        options: dict[str, Any] = {
            "service": settings.service,
            "base_urls": urls,
            "timeout_seconds": settings.http_timeout_seconds,
            "breaker_failures": settings.breaker_failures,
            "breaker_open_seconds": settings.breaker_open_seconds,
            "retry": RetryPolicy(settings.retry_backoff_seconds, settings.retry_max),
            "call_tokens": CallTokens(settings.call_tokens_dir),
        }
        return cls(**(options | kwargs))

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def breaker(self, downstream: str) -> CircuitBreaker:
        found = self._breakers.get(downstream)
        if found is None:
            found = CircuitBreaker(
                downstream,
                failure_threshold=self._breaker_failures,
                open_seconds=self._breaker_open_seconds,
                clock=self._clock,
                on_change=self._breaker_changed,
            )
            self._breakers[downstream] = found
            self._metrics.breaker_state.labels(self.service, downstream).set(BreakerState.CLOSED)
        return found

    def url(self, downstream: str, path: str) -> str:
        try:
            base = self.base_urls[downstream]
        except KeyError:
            raise ValueError(
                f"{self.service} has no address for {downstream!r}: is it in the service's calls?"
            ) from None
        return base + (path if path.startswith("/") else "/" + path)

    async def request(
        self,
        downstream: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> httpx.Response:
        """Call `downstream` (a name from `base_urls`). `retry`: None decides by method and
        `Idempotency-Key`; False never retries; True retries a request you know is safe."""
        method = method.upper()
        url = self.url(downstream, path)
        sent_headers = self._headers(headers or {}, downstream)
        retryable = may_retry(method, sent_headers) if retry is None else retry
        breaker = self.breaker(downstream)
        attempt = 0
        while True:
            failure: DownstreamError | None = None
            response: httpx.Response | None = None
            budget = deadline.budget(self.timeout_seconds, self._clock())
            if budget <= 0:
                self._count(downstream, method, "deadline_exceeded")
                raise DeadlineExceededError(downstream)
            try:
                response = await self._attempt(
                    breaker, method, url, budget, json=json, content=content, params=params, headers=sent_headers
                )
            except CircuitOpenError:
                self._count(downstream, method, "circuit_open")
                raise
            except DownstreamError as error:
                failure = error
            if response is not None and not self._worth_retrying(downstream, response):
                return response
            delay = self.retry.delay(attempt + 1)
            if not retryable or attempt >= self.retry.max_retries or not self._time_left_for(delay):
                if failure is not None:
                    raise failure
                assert response is not None
                return response
            attempt += 1
            self._metrics.retries.labels(self.service, downstream).inc()
            await self._sleep(delay)

    @staticmethod
    def _worth_retrying(downstream: str, response: httpx.Response) -> bool:
        """A "try again" answer from the downstream itself; not one passing on another's failure."""
        origin = failed_service(response.headers)
        return response.status_code in RETRYABLE_STATUSES and origin in (None, downstream)

    def _time_left_for(self, delay: float) -> bool:
        """Whether the request's deadline leaves room to wait `delay` and try once more."""
        return deadline.budget(self.timeout_seconds, self._clock() + delay) > 0

    async def _attempt(
        self,
        breaker: CircuitBreaker,
        method: str,
        url: str,
        budget: float,
        *,
        json: Any,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        downstream = breaker.downstream
        breaker.acquire()
        parent = tracing.current()
        span = tracing.outgoing(parent)
        begin = time.perf_counter()
        start_ns = time.time_ns() if self._spans is not None else 0
        error: str | None = None  # the span's error.type when the attempt got no answer
        detail: str | None = None
        sent = {**headers, **span.headers(), **deadline.header(budget)}
        try:
            async with asyncio.timeout(budget):
                response = await self._http.request(
                    method, url, json=json, content=content, params=params, headers=sent
                )
        except (TimeoutError, httpx.TimeoutException):
            error = "timeout"
            if budget < self.timeout_seconds:
                # Cut short by the caller's deadline: the downstream did not get the platform's
                # full timeout, so this is no verdict on it.
                breaker.release()
                self._count(downstream, method, "timeout")
            else:
                self._fail(breaker, method, "timeout")
            raise DownstreamTimeoutError(downstream, budget) from None
        except httpx.TransportError as err:
            error, detail = "unreachable", type(err).__name__
            self._fail(breaker, method, "unreachable")
            raise DownstreamUnreachableError(downstream, type(err).__name__) from err
        except BaseException as err:
            error = type(err).__name__
            breaker.release()  # cancelled or a bug here: no verdict on the downstream
            raise
        finally:
            self._metrics.duration.labels(self.service, downstream).observe(time.perf_counter() - begin)
            if self._spans is not None:
                self._spans.client(
                    span,
                    parent,
                    method=method,
                    url=url,
                    downstream=downstream,
                    status=response.status_code if error is None else None,
                    start_ns=start_ns,
                    error=error,
                    description=detail,
                )
        origin = failed_service(response.headers)
        if response.status_code >= 500 and origin not in (None, downstream):
            breaker.release()  # the downstream answered; it passes on another service's failure
            self._count(downstream, method, f"{response.status_code // 100}xx")
        elif response.status_code >= 500:
            self._fail(breaker, method, "status_5xx", outcome=f"{response.status_code // 100}xx")
        else:
            breaker.record_success()
            self._count(downstream, method, f"{response.status_code // 100}xx")
        return response

    def _headers(self, given: Mapping[str, str], downstream: str) -> dict[str, str]:
        out = {k.lower(): v for k, v in given.items()}
        caller = identity.current()
        if caller is not None and identity.USER_ID_HEADER not in out:
            out.update(caller.headers())
        token = self._call_tokens.authorization(downstream) if self._call_tokens else None
        if token is not None:
            out["authorization"] = token
        return out

    def _fail(self, breaker: CircuitBreaker, method: str, reason: str, *, outcome: str | None = None) -> None:
        breaker.record_failure()
        self._metrics.failures.labels(self.service, breaker.downstream, reason).inc()
        self._count(breaker.downstream, method, outcome or reason)

    def _count(self, downstream: str, method: str, outcome: str) -> None:
        self._metrics.requests.labels(self.service, downstream, method, outcome).inc()

    def _breaker_changed(self, downstream: str, state: BreakerState) -> None:
        self._metrics.breaker_state.labels(self.service, downstream).set(state)
        self._metrics.breaker_transitions.labels(self.service, downstream, state.name.lower()).inc()

    # Shortcuts for the common methods.
    async def get(self, downstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(downstream, "GET", path, **kwargs)

    async def post(self, downstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(downstream, "POST", path, **kwargs)

    async def patch(self, downstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(downstream, "PATCH", path, **kwargs)

    async def put(self, downstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(downstream, "PUT", path, **kwargs)

    async def delete(self, downstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(downstream, "DELETE", path, **kwargs)
