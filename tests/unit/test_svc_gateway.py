"""The gateway against stand-in services (httpx.MockTransport): authentication, identity and
trace forwarding, routing, rate limits, validation, and its public OpenAPI document."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.main import create_app
from tests.unit.svc_helpers import AUDIENCE, ISSUER, FakeClock, HostRouter, Signer, gateway_settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Downstream:
    """A stand-in service that records what reached it and echoes it back."""

    jwks: dict[str, Any] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)
    down: bool = False
    refusals: int = 0  # answer this many requests 401 before echoing again
    # The account states the gateway looks up (users' internal API): by user id, every role and
    # verified unless a test says otherwise; None: no such account.
    accounts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    lookups: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json=self.jwks)
        if request.url.path.startswith("/internal/v1/accounts/"):
            self.lookups += 1
            user_id = request.url.path.rsplit("/", 1)[-1]
            default = {"active": True, "roles": ["admin", "customer"], "email_verified": True, "token_version": 0}
            state = self.accounts.get(user_id, default)
            if state is None:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "", "details": {}}})
            return httpx.Response(200, json={"id": user_id} | state)
        self.seen.append(request)
        if self.refusals > 0:
            self.refusals -= 1
            return httpx.Response(401, json={"error": {"code": "invalid_credentials", "message": "", "details": {}}})
        return httpx.Response(
            200,
            json={"path": request.url.path, "query": request.url.query.decode()},
            headers={"x-internal": "secret", "retry-after": "3"},
        )


@dataclass
class Gateway:
    app: FastAPI
    http: httpx.AsyncClient
    users: Downstream
    orders: Downstream
    signer: Signer
    clock: FakeClock

    def token(self, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        values = {"sub": "11111111-1111-1111-1111-111111111111", "iat": now, "exp": now + 600} | claims
        return {"Authorization": f"Bearer {self.signer.token(**values)}"}


async def start(**config: Any) -> AsyncIterator[Gateway]:
    signer, clock = Signer(), FakeClock()
    users, orders = Downstream(jwks={"keys": [signer.jwk]}), Downstream()
    options = {"issuer": ISSUER, "audience": AUDIENCE, "rate_per_second": 1000.0, "rate_burst": 1000.0} | config
    app = create_app(
        gateway_settings(retry_backoff_seconds=(0,)),
        config=GatewayConfig(**options),
        transport=HostRouter(users=httpx.MockTransport(users), orders=httpx.MockTransport(orders)),
        clock=clock,
        configure_logs=False,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
    ):
        yield Gateway(app, http, users, orders, signer, clock)


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async for gateway in start():
        yield gateway


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_public_operations_are_forwarded_unchanged_and_without_client_identity_headers(gw: Gateway) -> None:
    body = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
    response = await gw.http.post("/api/v1/users", json=body, headers={"X-User-Id": "admin-1", "X-User-Roles": "admin"})
    assert response.status_code == 200
    sent = gw.users.seen[-1]
    assert sent.url.path == "/api/v1/users" and json.loads(sent.content) == body
    assert "x-user-id" not in sent.headers and "x-user-roles" not in sent.headers
    assert "x-internal" not in response.headers and response.headers["retry-after"] == "3"


async def test_an_authenticated_request_carries_the_tokens_identity_and_the_trace(gw: Gateway) -> None:
    headers = gw.token(roles=["customer"]) | {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "X-User-Id": "forged"}
    response = await gw.http.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 200 and response.headers["x-trace-id"] == TRACE
    sent = gw.users.seen[-1]
    assert sent.headers["x-user-id"] == "11111111-1111-1111-1111-111111111111"
    assert sent.headers["x-user-roles"] == "customer"
    assert sent.headers["traceparent"].split("-")[1] == TRACE
    assert "authorization" not in sent.headers


async def test_requests_without_a_valid_token_are_401(gw: Gateway) -> None:
    assert (await gw.http.get("/api/v1/users/me")).status_code == 401
    assert (await gw.http.get("/api/v1/users/me", headers={"X-User-Id": "someone"})).status_code == 401
    for headers in (
        gw.token(exp=1_000_000_000, iat=999_999_000),
        gw.token(aud="urn:keelson:elsewhere:api"),
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwdw=="},
    ):
        response = await gw.http.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
        assert code_of(response) in {"invalid_token", "unauthorized"}
    assert gw.users.seen == []


async def test_admin_operations_need_the_admin_role(gw: Gateway) -> None:
    response = await gw.http.get("/api/v1/admin/users", headers=gw.token(roles=["customer"]))
    assert response.status_code == 403 and code_of(response) == "forbidden" and gw.users.seen == []
    response = await gw.http.get("/api/v1/admin/users?limit=5", headers=gw.token(roles=["admin"]))
    assert response.status_code == 200 and response.json() == {"path": "/api/v1/admin/users", "query": "limit=5"}


async def test_requests_are_validated_against_the_public_api(gw: Gateway) -> None:
    auth = gw.token()
    order = {"items": [{"sku": "A-1", "quantity": 1}], "currency": "EUR"}
    missing_key = await gw.http.post("/api/v1/orders", json=order, headers=auth)
    assert missing_key.status_code == 422 and missing_key.json()["error"]["details"]["errors"][0]["location"] == [
        "header",
        "Idempotency-Key",
    ]
    bad = await gw.http.post(
        "/api/v1/orders", json={**order, "currency": "euro"}, headers=auth | {"Idempotency-Key": "k1"}
    )
    assert bad.status_code == 422
    unknown_field = await gw.http.post(
        "/api/v1/users", json={"email": "a@b.co", "password": "x" * 8, "name": "A", "admin": True}
    )
    assert unknown_field.status_code == 422
    priced_by_the_client = {"items": [{"sku": "A-1", "quantity": 1, "unit_price_cents": 1}]}
    refused = await gw.http.post("/api/v1/orders", json=priced_by_the_client, headers=auth | {"Idempotency-Key": "k1"})
    assert refused.status_code == 422 and code_of(refused) == "validation_failed"
    assert refused.json()["error"]["details"]["errors"][0]["location"] == ["body", "items", "0", "unit_price_cents"]
    assert (await gw.http.get(f"/api/v1/orders/{'not-a-uuid'}", headers=auth)).status_code == 422
    huge = await gw.http.post(
        "/api/v1/users", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    assert gw.orders.seen == []
    ok = await gw.http.post("/api/v1/orders", json=order, headers=auth | {"Idempotency-Key": "k1"})
    assert ok.status_code == 200 and gw.orders.seen[-1].headers["idempotency-key"] == "k1"


async def test_the_catalogue_is_public_and_changing_it_needs_the_admin_role(gw: Gateway) -> None:
    listed = await gw.http.get("/api/v1/products?limit=5")
    assert listed.status_code == 200 and listed.json() == {"path": "/api/v1/products", "query": "limit=5"}
    assert "x-user-id" not in gw.orders.seen[-1].headers
    product = {"sku": "A-1", "name": "Anchor", "price_cents": 1250, "currency": "EUR", "stock": 10}
    assert (await gw.http.post("/api/v1/admin/products", json=product)).status_code == 401
    customer = await gw.http.post("/api/v1/admin/products", json=product, headers=gw.token(roles=["customer"]))
    assert customer.status_code == 403 and code_of(customer) == "forbidden"
    seen = len(gw.orders.seen)
    assert (
        await gw.http.patch("/api/v1/admin/products/A-1", json={"stock": -1}, headers=gw.token(roles=["admin"]))
    ).status_code == 422
    assert len(gw.orders.seen) == seen
    admin = await gw.http.post("/api/v1/admin/products", json=product, headers=gw.token(roles=["admin"]))
    assert admin.status_code == 200 and gw.orders.seen[-1].headers["x-user-roles"] == "admin"
    changed = await gw.http.patch(
        "/api/v1/admin/products/A-1", json={"price_cents": 999}, headers=gw.token(roles=["admin"])
    )
    assert changed.status_code == 200 and gw.orders.seen[-1].url.path == "/api/v1/admin/products/A-1"


async def test_fulfilment_needs_the_admin_role(gw: Gateway) -> None:
    ship = f"/api/v1/admin/orders/{uuid.uuid4()}/ship"
    customer = await gw.http.post(ship, headers=gw.token(roles=["customer"]))
    assert customer.status_code == 403 and gw.orders.seen == []
    shipped = await gw.http.post(ship, headers=gw.token(roles=["admin"]))
    assert shipped.status_code == 200 and gw.orders.seen[-1].url.path == ship
    assert gw.orders.seen[-1].headers["x-user-roles"] == "admin"


async def test_paths_outside_the_public_api_go_to_the_longest_matching_route(gw: Gateway) -> None:
    order_id = uuid.uuid4()
    response = await gw.http.get(f"/api/v1/orders/{order_id}/items", headers=gw.token())
    assert response.status_code == 200 and gw.orders.seen[-1].url.path == f"/api/v1/orders/{order_id}/items"
    assert (await gw.http.get(f"/api/v1/orders/{order_id}/items")).status_code == 401


async def test_paths_no_service_serves_are_404(gw: Gateway) -> None:
    response = await gw.http.get("/api/v1/notifications", headers=gw.token())  # no route to notifications
    assert response.status_code == 404 and code_of(response) == "not_found"
    assert (await gw.http.get("/api/v1/ordersx", headers=gw.token())).status_code == 404


async def test_over_the_rate_limit_is_429_with_retry_after() -> None:
    async for gw in start(rate_per_second=1.0, rate_burst=2.0):
        alice, bob = gw.token(sub=str(uuid.uuid4())), gw.token(sub=str(uuid.uuid4()))
        assert [(await gw.http.get("/api/v1/users/me", headers=alice)).status_code for _ in range(2)] == [200, 200]
        limited = await gw.http.get("/api/v1/users/me", headers=alice)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        assert code_of(limited) == "rate_limited"
        assert (await gw.http.get("/api/v1/users/me", headers=bob)).status_code == 200  # a bucket per user
        gw.clock.advance(1)
        assert (await gw.http.get("/api/v1/users/me", headers=alice)).status_code == 200
        login = {"email": "a@b.co", "password": "x"}
        statuses = [(await gw.http.post("/api/v1/auth/token", json=login)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # anonymous callers are limited by address


async def test_a_failing_service_opens_its_breaker_and_the_gateway_answers_503_with_retry_after(gw: Gateway) -> None:
    auth = gw.token()
    await gw.http.get("/api/v1/users/me", headers=auth)  # JWKS fetched while users is up
    gw.users.down = True
    first = await gw.http.get("/api/v1/users/me", headers=auth)  # 1 try + 3 retries: the breaker opens at 3
    assert first.status_code == 503 and code_of(first) == "service_unavailable"
    assert first.headers["retry-after"] == "30"
    assert (await gw.http.get("/api/v1/orders", headers=auth)).status_code == 200  # other services unaffected
    gw.clock.advance(30)
    gw.users.down = False
    assert (await gw.http.get("/api/v1/users/me", headers=auth)).status_code == 200


def test_the_openapi_document_describes_the_public_api(gw_app: FastAPI) -> None:
    document = gw_app.openapi()
    paths = document["paths"]
    assert set(paths) == {
        "/api/v1/users",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/verify-email/resend",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/users/me",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{user_id}",
        "/api/v1/admin/keys/rotate",
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/products",
        "/api/v1/products/{sku}",
        "/api/v1/admin/products",
        "/api/v1/admin/products/{sku}",
        "/api/v1/admin/orders/{order_id}/ship",
        "/api/v1/admin/orders/{order_id}/deliver",
        "/api/v1/notifications",
        "/api/v1/notifications/phone",
        "/api/v1/notifications/phone/verify",
        "/api/v1/notifications/devices",
        "/api/v1/notifications/devices/{device_id}",
        "/api/v1/notifications/preferences",
        "/api/v1/admin/notifications/templates",
        "/api/v1/admin/notifications/templates/{channel}/{name}/{locale}",
        "/api/v1/admin/notifications/templates/{channel}/{name}/{locale}/versions",
        "/api/v1/admin/notifications/templates/{channel}/{name}/{locale}/activate",
        "/api/v1/admin/notifications/preview/{channel}/{name}",
        "/api/v1/admin/notifications/audit",
    }
    assert "security" not in paths["/api/v1/products"]["get"]
    assert paths["/api/v1/admin/products"]["post"]["security"] == [{"HTTPBearer": []}]
    line = document["components"]["schemas"]["OrderLine"]
    assert set(line["properties"]) == {"sku", "quantity"} and line["additionalProperties"] is False
    assert "security" not in paths["/api/v1/users"]["post"] and "security" not in paths["/api/v1/auth/token"]["post"]
    assert paths["/api/v1/users/me"]["get"]["security"] == [{"HTTPBearer": []}]
    register = paths["/api/v1/users"]["post"]
    assert register["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegisterRequest"
    }
    assert register["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserProfile"
    }
    assert document["components"]["schemas"]["RegisterRequest"]["additionalProperties"] is False


@pytest.fixture
def gw_app() -> FastAPI:
    return create_app(gateway_settings(), config=GatewayConfig(issuer=ISSUER, audience=AUDIENCE), configure_logs=False)


async def test_an_undocumented_method_on_a_documented_path_is_405_listing_every_documented_one(gw: Gateway) -> None:
    """Found by fuzzing: the catch-all forwarded these (the service's 405 came back without
    `Allow`; paths under /auth and /admin, which no route prefix names, were 404), and a 405 of
    Starlette's own listed only the first route of the path."""
    auth = gw.token(roles=["admin"])
    for method, path, allowed in (
        ("PUT", "/api/v1/users", "POST"),
        ("GET", "/api/v1/auth/token", "POST"),
        ("DELETE", "/api/v1/admin/users", "GET"),
        ("PUT", f"/api/v1/orders/{uuid.uuid4()}", "GET"),
        ("OPTIONS", "/api/v1/users/me", "DELETE, GET, PATCH"),
        ("TRACE", "/api/v1/orders", "GET, POST"),
    ):
        for headers in (auth, {}):  # the document is public: no need to authenticate to learn it
            response = await gw.http.request(method, path, headers=headers)
            assert response.status_code == 405 and response.headers["allow"] == allowed, (method, path)
            assert code_of(response) == "method_not_allowed"
    assert gw.users.seen == gw.orders.seen == []
    # Paths the public API does not name are still forwarded, whatever the method.
    assert (await gw.http.put(f"/api/v1/orders/{uuid.uuid4()}/items", headers=auth)).status_code == 200


async def test_what_the_services_cannot_take_is_refused_at_the_gateway(gw: Gateway) -> None:
    """Found by fuzzing, each was a 500 in a service: NUL in a login's email (PostgreSQL text
    cannot hold it). An order listing a SKU twice is refused too (order it once, with its
    quantity); the catalogue refuses an order totalling 0 (payments charges at least 1 cent)."""
    twice = {"items": [{"sku": "A-1", "quantity": 3}, {"sku": "A-1", "quantity": 1}]}
    refused = await gw.http.post("/api/v1/orders", json=twice, headers=gw.token() | {"Idempotency-Key": "k1"})
    assert refused.status_code == 422 and code_of(refused) == "validation_failed"
    login = await gw.http.post("/api/v1/auth/token", json={"email": "ada\u0000@example.com", "password": "x"})
    assert login.status_code == 422 and code_of(login) == "validation_failed"
    assert gw.users.seen == gw.orders.seen == []
    twice["items"][1]["sku"] = "A-2"
    ok = await gw.http.post("/api/v1/orders", json=twice, headers=gw.token() | {"Idempotency-Key": "k1"})
    assert ok.status_code == 200


async def test_the_document_and_the_gateway_agree_on_which_emails_are_valid(gw: Gateway) -> None:
    """Found by fuzzing: the email pattern's `\\s` is another set in ECMA-262 (the document's
    regex dialect) than in pydantic's Rust regex, so the document allowed U+0085 in an address
    and the gateway refused it."""
    import jsonschema_rs

    document = gw.app.openapi()
    email = document["components"]["schemas"]["RegisterRequest"]["properties"]["email"]
    allowed_by_document = jsonschema_rs.validator_for(email)
    whitespace = [chr(c) for c in range(0x3001) if chr(c).isspace()] + ["\ufeff", "\u0000"]
    for char in [*whitespace, "x", "\u00e9"]:
        address = f"a{char}b@example.com"
        response = await gw.http.post("/api/v1/users", json={"email": address, "password": "x" * 8, "name": "A"})
        assert response.status_code in (200, 422)
        assert (response.status_code == 200) == allowed_by_document.is_valid(address), hex(ord(char))
