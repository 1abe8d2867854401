"""The Kubernetes client under API Priority and Fairness: 429 and Retry-After are honoured with
jittered backoff, a bounded number of times, and nothing else is retried."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from keelson.kube.client import ApiError, KubeClient, retry_delay
from keelson.kube.resources import CHILD_KINDS

CONFIGMAP = next(k for k in CHILD_KINDS if k.kind == "ConfigMap")


def _configuration(host: str) -> Any:
    """What `kubernetes.client.Configuration` offers the client, for a plain-HTTP test server."""
    return SimpleNamespace(
        host=host,
        verify_ssl=False,
        ssl_ca_cert=None,
        cert_file=None,
        key_file=None,
        refresh_api_key_hook=None,
        get_api_key_with_prefix=lambda _key: "Bearer test",
    )


class Sleeps:
    """An injected sleep: records the delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _client(handler: Any, sleeps: Sleeps, **kwargs: Any) -> KubeClient:
    return KubeClient(
        _configuration("http://kube.test"),
        transport=httpx.MockTransport(handler),
        sleep=sleeps,
        jitter=lambda: 0.5,
        **kwargs,
    )


def _throttled(headers: dict[str, str] | None = None, status: int = 429) -> httpx.Response:
    body = {"kind": "Status", "reason": "TooManyRequests", "message": "too many requests, please try again later"}
    return httpx.Response(status, json=body, headers=headers or {})


async def test_429_with_retry_after_waits_that_long_plus_jitter_then_succeeds() -> None:
    answers = iter([_throttled({"Retry-After": "3"}), _throttled({"Retry-After": "1"}), httpx.Response(200, json={})])
    sleeps = Sleeps()
    client = _client(lambda _r: next(answers), sleeps)
    assert await client.get(CONFIGMAP, "ns", "cm") == {}
    # Retry-After is the floor; the jitter (here half of 20 %) spreads the herd of retries.
    assert sleeps.delays == [pytest.approx(3.3), pytest.approx(1.1)]
    await client.aclose()


async def test_429_without_retry_after_backs_off_exponentially() -> None:
    answers = iter([_throttled(), _throttled(), _throttled(), httpx.Response(200, json={"ok": 1})])
    sleeps = Sleeps()
    client = _client(lambda _r: next(answers), sleeps)
    assert await client.get(CONFIGMAP, "ns", "cm") == {"ok": 1}
    # Full jitter over 0.5 s, 1 s, 2 s (the injected jitter draws the middle of each range).
    assert sleeps.delays == [pytest.approx(0.25), pytest.approx(0.5), pytest.approx(1.0)]
    await client.aclose()


async def test_gives_up_after_the_last_attempt_with_the_servers_error() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return _throttled({"Retry-After": "1"})

    sleeps = Sleeps()
    client = _client(handler, sleeps, attempts=4)
    with pytest.raises(ApiError) as caught:
        await client.get(CONFIGMAP, "ns", "cm")
    assert caught.value.status == 429 and caught.value.reason == "TooManyRequests"
    assert len(calls) == 4 and len(sleeps.delays) == 3
    await client.aclose()


async def test_a_5xx_is_retried_only_when_the_server_says_when() -> None:
    sleeps = Sleeps()
    answers = iter([_throttled({"Retry-After": "2"}, status=503), httpx.Response(200, json={})])
    client = _client(lambda _r: next(answers), sleeps)
    assert await client.get(CONFIGMAP, "ns", "cm") == {}
    assert sleeps.delays == [pytest.approx(2.2)]
    # Without Retry-After a 500 is the caller's business (the work queue backs off the platform).
    client = _client(lambda _r: httpx.Response(500, json={"reason": "InternalError", "message": "x"}), sleeps)
    with pytest.raises(ApiError) as caught:
        await client.get(CONFIGMAP, "ns", "cm")
    assert caught.value.status == 500 and len(sleeps.delays) == 1
    await client.aclose()


async def test_a_conflict_or_refusal_is_never_retried() -> None:
    calls = 0

    def handler(_request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(422, json={"reason": "Invalid", "message": "spec.x: Invalid value"})

    client = _client(handler, Sleeps())
    with pytest.raises(ApiError):
        await client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "b"}})
    assert calls == 1
    await client.aclose()


def test_retry_delay_caps_a_huge_retry_after_and_ignores_garbage() -> None:
    assert retry_delay(0, "3600", jitter=0.0) == 30.0  # never park a worker for an hour
    assert retry_delay(2, "soon", jitter=1.0) == pytest.approx(2.0)  # unparsable: the backoff
    assert retry_delay(10, None, jitter=1.0) == pytest.approx(8.0)  # the backoff is capped too


# -- against a real HTTP server --------------------------------------------------------------------


class ThrottlingServer:
    """An HTTP/1.1 server on loopback that answers 429 with Retry-After: 1 to the first request of
    every path, then 200: the API server's priority-and-fairness rejection, on the wire."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._seen: set[str] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            path = lines[0].split()[1]
            length = next((int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length:")), 0)
            if length:
                await reader.readexactly(length)
            self.arrivals.append(time.monotonic())
            if path in self._seen:
                status, extra, body = "200 OK", "", json.dumps({"kind": "ConfigMap"})
            else:
                self._seen.add(path)
                status, extra = "429 Too Many Requests", "Retry-After: 1\r\n"
                body = json.dumps({"kind": "Status", "reason": "TooManyRequests", "message": "slow down"})
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            await writer.drain()


@pytest.fixture
async def throttling_server() -> AsyncIterator[tuple[ThrottlingServer, str]]:
    server = ThrottlingServer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await server.handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield server, f"http://127.0.0.1:{port}"
    listener.close()
    await listener.wait_closed()


async def test_a_real_server_sees_the_retry_no_sooner_than_retry_after(
    throttling_server: tuple[ThrottlingServer, str],
) -> None:
    server, url = throttling_server
    client = KubeClient(_configuration(url))
    started = time.monotonic()
    assert await client.get(CONFIGMAP, "ns", "cm") == {"kind": "ConfigMap"}
    assert len(server.arrivals) == 2
    gap = server.arrivals[1] - server.arrivals[0]
    assert 1.0 <= gap < 1.5, gap  # Retry-After: 1, plus at most 20 % jitter
    assert time.monotonic() - started < 2.0
    await client.aclose()
