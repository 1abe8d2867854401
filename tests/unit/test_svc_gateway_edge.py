"""The gateway at the platform's edge: whose address a request is charged to behind a proxy,
the per-account login lockout, internal paths refused to proxied requests, and 5xx answers that
name no internal service (stand-in services, `test_svc_gateway.start`)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.edge import public_error
from keelson_services.services.gateway.forwarded import TrustedProxies, parse_networks
from keelson_services.settings import SettingsError
from tests.unit.svc_helpers import gateway_settings
from tests.unit.test_svc_gateway import Gateway, code_of, start

CLUSTER = TrustedProxies(parse_networks("10.0.0.0/8, fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.7", [], "203.0.113.7"),  # no proxy
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # forged by an untrusted peer: ignored
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),  # the ingress controller vouches for its peer
        ("10.1.2.3", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),  # the client's own claim, left of it, is not read
        ("10.1.2.3", ["1.1.1.1", "198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # two trusted hops, two headers
        ("10.1.2.3", ["10.5.5.5, 10.9.9.9"], "10.5.5.5"),  # every hop trusted: the leftmost
        ("10.1.2.3", ["not-an-address"], "10.1.2.3"),  # junk from a proxy: the last vouched-for address
        ("10.1.2.3", ["::ffff:198.51.100.1"], "198.51.100.1"),  # one client, one spelling
        ("10.1.2.3", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("fd00::1", ["198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", [], "10.1.2.3"),
    ],
)
def test_the_client_is_the_rightmost_address_no_trusted_proxy_has(peer: str, forwarded: list[str], client: str) -> None:
    assert CLUSTER.client(peer, forwarded) == client


def test_nothing_is_trusted_by_default_and_bad_cidrs_are_a_clear_error() -> None:
    assert TrustedProxies().client("10.1.2.3", ["198.51.100.1"]) == "10.1.2.3"
    assert GatewayConfig.from_env(gateway_settings(), {}).trusted_proxies == ()
    config = GatewayConfig.from_env(gateway_settings(), {"KEELSON_GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1"})
    assert config.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))
    with pytest.raises(SettingsError, match=r"KEELSON_GATEWAY_TRUSTED_PROXIES: '10\.0\.0\.0/33'"):
        GatewayConfig.from_env(gateway_settings(), {"KEELSON_GATEWAY_TRUSTED_PROXIES": "10.0.0.0/33"})


async def _anonymous_statuses(gw: Gateway, forwarded_for: str, times: int) -> list[int]:
    login = {"email": "a@b.co", "password": "x"}
    headers = {"X-Forwarded-For": forwarded_for}
    return [(await gw.http.post("/api/v1/auth/token", json=login, headers=headers)).status_code for _ in range(times)]


async def test_a_forged_forwarded_for_does_not_buy_an_untrusted_client_a_new_budget() -> None:
    # ASGITransport's peer is 127.0.0.1: not a trusted proxy here.
    async for gw in start(rate_per_second=0.001, rate_burst=2.0):
        assert await _anonymous_statuses(gw, "198.51.100.1", 2) == [200, 200]
        assert await _anonymous_statuses(gw, "198.51.100.2", 1) == [429]


async def test_behind_a_trusted_proxy_each_client_has_a_budget_of_its_own() -> None:
    async for gw in start(rate_per_second=0.001, rate_burst=2.0, trusted_proxies=parse_networks("127.0.0.0/8")):
        assert await _anonymous_statuses(gw, "198.51.100.1", 3) == [200, 200, 429]
        assert await _anonymous_statuses(gw, "198.51.100.2", 2) == [200, 200]
        # A client prepending addresses of its own is still itself.
        assert await _anonymous_statuses(gw, "192.0.2.1, 198.51.100.1", 1) == [429]


async def test_an_account_is_locked_out_after_failed_logins_whether_or_not_it_exists() -> None:
    async for gw in start(login_failures=2, login_lockout_seconds=60.0):
        gw.users.refusals = 2
        login = {"email": "Eve@Example.com", "password": "guess"}
        statuses = [(await gw.http.post("/api/v1/auth/token", json=login)).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]
        locked = await gw.http.post("/api/v1/auth/token", json=login | {"email": "eve@example.com"})
        assert locked.status_code == 429 and "failed logins" in locked.json()["error"]["message"]
        assert locked.headers["retry-after"] == "60"
        # Another account is not affected; the locked one gets one attempt back after the lockout.
        assert (await gw.http.post("/api/v1/auth/token", json=login | {"email": "ann@example.com"})).status_code == 200
        gw.clock.advance(60)
        assert (await gw.http.post("/api/v1/auth/token", json=login)).status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/healthz", "/docs", "/openapi.json", "/"])
async def test_internal_paths_are_not_found_through_a_proxy_but_answer_directly(path: str) -> None:
    async for gw in start():
        for header in ("X-Forwarded-For", "Forwarded"):
            proxied = await gw.http.get(path, headers={header: "198.51.100.1"})
            assert proxied.status_code == 404 and code_of(proxied) == "not_found", (header, proxied.text)
        if path != "/":
            assert (await gw.http.get(path)).status_code == 200


async def test_a_5xx_leaves_the_gateway_naming_no_service() -> None:
    async for gw in start():
        auth = gw.token()
        await gw.http.get("/api/v1/users/me", headers=auth)  # JWKS fetched while users is up
        gw.users.down = True
        down = await gw.http.get("/api/v1/users/me", headers=auth)
        assert down.status_code == 503 and code_of(down) == "service_unavailable"
        assert "users" not in down.text.lower() and "connecterror" not in down.text.lower()
        assert "x-keelson-failed-service" not in down.headers and down.headers["retry-after"] == "30"
        assert down.json()["error"]["details"] == {"retry_after_seconds": 30}


@pytest.mark.parametrize(
    ("status", "inside", "outside"),
    [
        (
            502,
            {"error": {"code": "payment_error", "message": "The payments service answered 500",
                       "details": {"service": "payments", "status": 500, "error": {"code": "x"}}}},
            {"error": {"code": "payment_error", "message": "The platform could not complete the request",
                       "details": {}}},
        ),
        (
            500,
            "Traceback (most recent call last): KeyError: 'secret'",
            {"error": {"code": "internal_error", "message": "An unexpected error occurred", "details": {}}},
        ),
        (
            503,
            {"error": {"code": "Orders.Down!", "message": "orders unreachable (ConnectError)",
                       "details": {"retry_after_seconds": 2, "service": "orders"}}},
            {"error": {"code": "unavailable", "details": {"retry_after_seconds": 2},
                       "message": "The platform is unavailable for this request; retry later"}},
        ),
    ],
)  # fmt: skip
def test_an_error_body_is_rebuilt_from_its_status_code_and_retry_delay(status: int, inside: Any, outside: Any) -> None:
    raw = inside.encode() if isinstance(inside, str) else json.dumps(inside).encode()
    assert public_error(status, raw) == outside
