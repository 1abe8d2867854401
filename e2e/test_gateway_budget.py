"""The design's 5 s request timeout is the budget of a request as its client sees it.

A real process stands in for a slow service: it publishes the users service's keys at once and
sleeps on every other request. Through the gateway (real HTTP, the platform's timeout, breaker
and retries), a GET, which may be retried, used to take 5 s per attempt plus backoffs (20-27 s);
now it answers 504, in the error format, within the budget plus a small margin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from e2e.svc_platform import wait_for
from keelson.devstack.ports import free_port
from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.main import create_app
from keelson_services.settings import Route
from tests.unit.svc_helpers import AUDIENCE, ISSUER, Signer, settings

BUDGET = 5.0
MARGIN = 0.5  # the deadline's own 0.2 s, plus the test's scheduling

SLOW_SERVICE = textwrap.dedent(
    """
    import http.server, sys, time
    jwks = sys.argv[2].encode()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/.well-known/jwks.json":
                time.sleep(30)  # far beyond any budget
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
    """
)


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def slow_service(signer: Signer) -> Iterator[str]:
    port = free_port()
    jwks = json.dumps({"keys": [signer.jwk]})
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SERVICE, str(port), jwks])
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
async def gateway(slow_service: str) -> AsyncIterator[httpx.AsyncClient]:
    gateway_settings = settings(
        "gateway",
        routes=(Route("/orders", "orders", slow_service), Route("/users", "users", slow_service)),
        service_urls={"orders": slow_service, "users": slow_service},
        http_timeout_seconds=BUDGET,
    )
    app = create_app(
        gateway_settings,
        config=GatewayConfig(issuer=ISSUER, audience=AUDIENCE, rate_per_second=1000.0, rate_burst=1000.0),
        configure_logs=False,
    )

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as probe:
                return (await probe.get(f"{slow_service}/.well-known/jwks.json", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(up, within=30, interval=0.1)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=60) as http,
    ):
        yield http


async def test_a_slow_service_costs_a_client_at_most_the_request_budget(
    gateway: httpx.AsyncClient, signer: Signer
) -> None:
    now = int(time.time())
    # The slow process is the users service too: the account check waits for it at most its own
    # second, within the budget, then takes the token at its word.
    subject = str(uuid.uuid4())
    token: dict[str, Any] = {"Authorization": f"Bearer {signer.token(sub=subject, iat=now, exp=now + 600)}"}
    timings = []
    for _ in range(2):  # the first also fetches the keys, inside the same budget
        began = time.monotonic()
        answer = await gateway.get("/api/v1/orders", headers=token)
        timings.append(time.monotonic() - began)
        assert answer.status_code == 504, answer.text
        assert answer.json()["error"]["code"] in ("downstream_timeout", "deadline_exceeded")
    print(f"\nthrough the gateway to a service that never answers: {[round(t, 2) for t in timings]} s")
    assert max(timings) <= BUDGET + MARGIN
