"""The gateway at the platform's edge, as the image runs it: two gateway processes and a users
process on loopback, each gateway with the env the operator renders (its own PostgreSQL database
for the rate limits, the derived trusted proxies), against the real PostgreSQL.

- one budget for the platform: requests spread over both replicas get `burst` answers in all,
  not `burst` per replica, and a forged `X-Forwarded-For` from an untrusted peer (loopback is
  not a proxy of the cluster) buys no budget of its own;
- failed logins lock the account out on every replica;
- the internal paths are refused to a request that came through a proxy, and a 5xx names no
  internal service or exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from e2e.svc_postgres import fresh_database
from e2e.svc_processes import rendered_env, service, stop, wait_ready
from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.devstack.ports import free_port
from keelson.render import RenderContext
from keelson.render.configmap import config_data

pytestmark = pytest.mark.postgres

BURST = 6
PASSWORD = "correct horse battery"


def rendered_trusted_proxies() -> str:
    """What the operator renders for a platform with a gateway and no trustedProxies of its own."""
    spec = MicroservicePlatformSpec.model_validate(
        {
            "domain": "ecommerce",
            "gateway": {"service": "gateway"},
            "services": [{"name": "gateway", "reference": "gateway"}],
        }
    )
    ctx = RenderContext(name="shop", namespace="shop", spec=spec)
    return config_data(ctx, ctx.service("gateway"))["KEELSON_GATEWAY_TRUSTED_PROXIES"]


@dataclass
class Edge:
    gateways: list[httpx.Client]
    users: object  # the users process
    gateway_uri: str

    def spread(self, method: str, path: str, times: int, **kwargs: object) -> list[httpx.Response]:
        """`times` requests, alternating between the gateways."""
        return [self.gateways[n % 2].request(method, path, **kwargs) for n in range(times)]  # type: ignore[arg-type]


@contextmanager
def running_edge(tmp_path: Path, *, burst: int = BURST) -> Iterator[Edge]:
    with fresh_database("users") as users_uri, fresh_database("gateway") as gateway_uri, ExitStack() as stack:
        users_port = free_port()
        users_url = f"http://127.0.0.1:{users_port}"
        users_env = rendered_env("users", users_port, KEELSON_DATABASE_URI=users_uri)
        users = stack.enter_context(service("users", users_env, tmp_path / "users.log"))
        wait_ready(users_url, users, tmp_path / "users.log")
        clients = []
        for n in range(2):
            port = free_port()
            env = rendered_env(
                "gateway",
                port,
                KEELSON_DATABASE_URI=gateway_uri,
                KEELSON_SERVICE_URLS=json.dumps({"users": users_url}),
                KEELSON_ROUTES=json.dumps([{"path": "/users", "service": "users", "url": users_url}]),
                KEELSON_GATEWAY_TRUSTED_PROXIES=rendered_trusted_proxies(),
                KEELSON_GATEWAY_RATE_LIMIT_PER_SECOND="0.001",  # no refill within a test
                KEELSON_GATEWAY_RATE_LIMIT_BURST=str(burst),
                KEELSON_GATEWAY_LOGIN_FAILURES="3",
            )
            log = tmp_path / f"gateway-{n}.log"
            process = stack.enter_context(service("gateway", env, log))
            wait_ready(f"http://127.0.0.1:{port}", process, log)
            clients.append(stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15)))
        yield Edge(clients, users, gateway_uri)


def test_two_replicas_share_one_budget_and_a_forged_forwarded_for_buys_none(tmp_path: Path) -> None:
    with running_edge(tmp_path) as edge:
        # Anonymous requests without a token are charged to the client's address; each claims
        # another address in X-Forwarded-For, which an untrusted peer's header cannot set.
        answers = [
            edge.gateways[n % 2].get("/api/v1/users/me", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(BURST + 2)
        ]
        assert [a.status_code for a in answers] == [401] * BURST + [429, 429], [a.text for a in answers]
        assert {a.json()["error"]["code"] for a in answers[BURST:]} == {"rate_limited"}
        assert all(int(a.headers["retry-after"]) >= 1 for a in answers[BURST:])
        # The counters are in the gateway's database, keyed by hashes: no address is stored.
        with psycopg.connect(edge.gateway_uri) as conn:
            stored = conn.execute("SELECT key_hash::text FROM rate_limits").fetchall()
        assert len(stored) == 1 and "127.0.0.1" not in stored[0][0]


def test_failed_logins_lock_an_account_out_on_every_replica(tmp_path: Path) -> None:
    with running_edge(tmp_path, burst=20) as edge:  # the address's budget is not what is tested
        created = edge.gateways[0].post(
            "/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
        )
        assert created.status_code == 201, created.text
        wrong = {"email": "ada@example.com", "password": "not the password"}
        assert [a.status_code for a in edge.spread("POST", "/api/v1/auth/token", 3, json=wrong)] == [401, 401, 401]
        right = {"email": "ADA@example.com", "password": PASSWORD}
        for gateway in edge.gateways:  # locked out everywhere, even with the right password
            locked = gateway.post("/api/v1/auth/token", json=right)
            assert locked.status_code == 429 and locked.json()["error"]["code"] == "rate_limited", locked.text
        # An account that does not exist is locked out alike: the lockout reveals nothing.
        ghost = {"email": "ghost@example.com", "password": "guess"}
        statuses = [a.status_code for a in edge.spread("POST", "/api/v1/auth/token", 4, json=ghost)]
        assert statuses[:3] == [401, 401, 401] and statuses[3] == 429


def test_internal_paths_through_a_proxy_are_404_and_a_5xx_names_nothing_internal(tmp_path: Path) -> None:
    with running_edge(tmp_path) as edge:
        gateway = edge.gateways[0]
        for path in ("/metrics", "/readyz", "/healthz", "/openapi.json", "/docs"):
            assert gateway.get(path).status_code == 200, path  # the probes' and the scrape's way in
            proxied = gateway.get(path, headers={"X-Forwarded-For": "203.0.113.9"})
            assert proxied.status_code == 404 and proxied.json()["error"]["code"] == "not_found", path
            assert "keelson_" not in proxied.text
        stop(edge.users)  # type: ignore[arg-type]
        down = gateway.post("/api/v1/auth/token", json={"email": "ada@example.com", "password": PASSWORD})
        assert down.status_code == 503, down.text
        assert down.json() == {
            "error": {
                "code": "service_unavailable",
                "message": "The platform is unavailable for this request; retry later",
                "details": {"retry_after_seconds": int(down.headers["retry-after"])},
            }
        }
        for internal in ("users", "ConnectError", "Error", "127.0.0.1"):
            assert internal not in down.text and internal not in "".join(down.headers.values()), internal
        assert "x-keelson-failed-service" not in down.headers
