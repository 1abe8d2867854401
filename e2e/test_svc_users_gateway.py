"""The users service and the gateway together, in process (httpx.ASGITransport), against a real
PostgreSQL: the customer journey, roles, key rotation, rate limits and hostile input."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from fastapi import FastAPI

from e2e.svc_postgres import fresh_database
from e2e.svc_processes import TEST_KEK
from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.main import create_app as create_gateway
from keelson_services.services.users.components import UsersComponents
from keelson_services.services.users.main import create_app as create_users
from keelson_services.services.users.manage import set_role
from keelson_services.settings import Route, Settings

pytestmark = pytest.mark.postgres

USERS_URL = "http://users.shop.svc:8080"
# Cheap hashing: these tests are about behaviour, not hashing cost.
FAST_HASHING = {
    "KEELSON_USERS_ARGON2_TIME_COST": "1",
    "KEELSON_USERS_ARGON2_MEMORY_KIB": "1024",
    "KEELSON_KEY_ENCRYPTION_KEY": TEST_KEK,  # what the operator puts in the database Secret
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def service_settings(service: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "service": service,
        "domain": "ecommerce",
        "kafka_bootstrap": None,
        "publishes": (),
        "subscribes": (),
        "retry_backoff_seconds": (1, 2, 4),
        "retry_max": 3,
        "platform": "shop",
    }
    return Settings(**(values | overrides))


@dataclass
class Platform:
    users_app: FastAPI
    gateway_app: FastAPI
    gateway: httpx.AsyncClient  # the public entry
    users: httpx.AsyncClient  # straight to the users service, as a peer inside the platform would
    clock: Clock
    database_uri: str

    @property
    def parts(self) -> UsersComponents:
        found: UsersComponents = self.users_app.state.users
        return found

    async def register(self, email: str, password: str = "correct horse battery", name: str = "Ada") -> dict[str, Any]:
        response = await self.gateway.post("/api/v1/users", json={"email": email, "password": password, "name": name})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(self, email: str, password: str = "correct horse battery") -> dict[str, Any]:
        response = await self.gateway.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def bearer(self, email: str, password: str = "correct horse battery") -> dict[str, str]:
        return {"Authorization": f"Bearer {(await self.login(email, password))['access_token']}"}


async def start(*, publishes: tuple[str, ...] = (), **gateway_config: Any) -> AsyncIterator[Platform]:
    """`publishes`: the users service's events (full topic names); they stay in its outbox (no Kafka)."""
    with fresh_database("users") as uri:
        users_app = create_users(
            service_settings("users", database_uri=uri, publishes=publishes), env=FAST_HASHING, configure_logs=False
        )
        clock = Clock()
        options: dict[str, Any] = {
            "issuer": "urn:keelson:shop:users",
            "audience": "urn:keelson:shop:api",
            "jwks_refresh_cooldown_seconds": 0.0,
        } | gateway_config
        gateway_app = create_gateway(
            service_settings(
                "gateway", service_urls={"users": USERS_URL}, routes=(Route("/users", "users", USERS_URL),)
            ),
            config=GatewayConfig(**options),
            transport=httpx.ASGITransport(app=users_app),
            clock=clock,
            configure_logs=False,
        )
        async with (
            users_app.router.lifespan_context(users_app),
            gateway_app.router.lifespan_context(gateway_app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app), base_url="http://gateway") as gateway,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=users_app), base_url=USERS_URL) as users,
        ):
            yield Platform(users_app, gateway_app, gateway, users, clock, uri)


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    async for running in start():
        yield running


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def test_register_log_in_and_read_the_profile_through_the_gateway(platform: Platform) -> None:
    created = await platform.register("ada@example.com", name="Ada Lovelace")
    assert created["roles"] == ["customer"] and created["active"] is True and "password_hash" not in created
    tokens = await platform.login("ADA@example.com")  # emails match regardless of case
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == created["id"] and claims["aud"] == "urn:keelson:shop:api"
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "EdDSA"

    me = await platform.gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json() == created
    assert len(me.headers["x-trace-id"]) == 32

    changed = await platform.gateway.patch(
        "/api/v1/users/me", json={"name": "Countess"}, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Countess"


async def test_wrong_credentials_and_duplicate_emails_are_refused(platform: Platform) -> None:
    await platform.register("bob@example.com")
    duplicate = await platform.gateway.post(
        "/api/v1/users", json={"email": "BOB@example.com", "password": "another password", "name": "Bob"}
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "email_taken"
    for email, password in (("bob@example.com", "wrong password"), ("nobody@example.com", "correct horse battery")):
        response = await platform.gateway.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_credentials"


async def test_refresh_tokens_are_single_use_and_a_reused_one_revokes_its_family(platform: Platform) -> None:
    await platform.register("carol@example.com")
    first = await platform.login("carol@example.com")
    second = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    reused = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "invalid_refresh_token"
    # The stolen-token response: the successor dies with the family.
    successor = await platform.gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert successor.status_code == 401


async def test_a_customer_gets_403_on_admin_endpoints_and_an_admin_gets_through(platform: Platform) -> None:
    await platform.register("customer@example.com")
    await platform.register("root@example.com")
    customer = await platform.bearer("customer@example.com")
    refused = await platform.gateway.get("/api/v1/admin/users", headers=customer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

    assert await set_role(platform.parts.db, "root@example.com", "admin", granted=True)
    admin = await platform.bearer("root@example.com")
    listed = await platform.gateway.get("/api/v1/admin/users?limit=10", headers=admin)
    assert listed.status_code == 200
    assert listed.json()["total"] == 2 and {u["email"] for u in listed.json()["items"]} == {
        "customer@example.com",
        "root@example.com",
    }


async def test_the_users_service_checks_roles_in_its_database_not_in_headers(platform: Platform) -> None:
    """Defence in depth: even a caller inside the platform forging X-User-Roles is refused."""
    customer = await platform.register("mallory@example.com")
    forged = await platform.users.get(
        "/api/v1/admin/users", headers={"X-User-Id": customer["id"], "X-User-Roles": "admin,customer"}
    )
    assert forged.status_code == 403
    assert (await platform.users.get("/api/v1/users/me")).status_code == 401


async def test_key_rotation_keeps_tokens_signed_with_the_old_key_valid(platform: Platform) -> None:
    await platform.register("dave@example.com")
    await platform.register("root@example.com")
    await set_role(platform.parts.db, "root@example.com", "admin", granted=True)
    old_token = (await platform.login("dave@example.com"))["access_token"]
    admin = await platform.bearer("root@example.com")
    assert (
        await platform.gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {old_token}"})
    ).status_code == 200

    rotated = await platform.gateway.post("/api/v1/admin/keys/rotate", headers=admin)
    assert rotated.status_code == 200 and rotated.json()["kid"] != kid_of(old_token)
    new_token = (await platform.login("dave@example.com"))["access_token"]
    assert kid_of(new_token) == rotated.json()["kid"]

    for token in (new_token, old_token):  # the new key is fetched on first sight; the old one still verifies
        me = await platform.gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
    jwks = (await platform.users.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {kid_of(old_token), kid_of(new_token)}


async def test_retired_keys_leave_the_jwks_once_their_tokens_have_expired(platform: Platform) -> None:
    old = await platform.parts.keys.signing_key()
    await platform.parts.keys.rotate()
    with psycopg.connect(platform.database_uri) as conn:
        conn.execute("UPDATE signing_keys SET retired_at = now() - interval '1 hour' WHERE kid = %s", [old.kid])
    jwks = (await platform.users.get("/.well-known/jwks.json")).json()
    assert old.kid not in {k["kid"] for k in jwks["keys"]} and len(jwks["keys"]) == 1


async def test_bad_tokens_are_401_at_the_gateway(platform: Platform) -> None:
    await platform.register("eve@example.com")
    token = (await platform.login("eve@example.com"))["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    escalated = base64.urlsafe_b64encode(json.dumps(claims | {"roles": ["admin"]}).encode()).rstrip(b"=").decode()
    unsigned_header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": kid_of(token)}).encode()).rstrip(b"=")
    for bad in (f"{header}.{escalated}.{signature}", f"{unsigned_header.decode()}.{escalated}.", token[:-4] + "AAAA"):
        response = await platform.gateway.get("/api/v1/admin/users", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


async def test_deactivated_accounts_cannot_log_in_refresh_or_act(platform: Platform) -> None:
    frank = await platform.register("frank@example.com")
    await platform.register("root@example.com")
    await set_role(platform.parts.db, "root@example.com", "admin", granted=True)
    tokens = await platform.login("frank@example.com")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await platform.gateway.get("/api/v1/users/me", headers=auth)).status_code == 200
    admin = await platform.bearer("root@example.com")
    deactivate = await platform.gateway.patch(
        f"/api/v1/admin/users/{frank['id']}", json={"active": False}, headers=admin
    )
    assert deactivate.status_code == 200
    # Refused at once by the users service (it reads the account), and by the gateway for every
    # other service once its check interval has passed (test_svc_accounts.py).
    me = await platform.gateway.get("/api/v1/users/me", headers=auth)
    assert me.status_code == 403 and me.json()["error"]["code"] == "account_deactivated"
    login = await platform.gateway.post(
        "/api/v1/auth/token", json={"email": "frank@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 403
    refresh = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


async def test_changing_the_password_needs_the_current_one(platform: Platform) -> None:
    await platform.register("gina@example.com")
    auth = await platform.bearer("gina@example.com")
    wrong = await platform.gateway.patch(
        "/api/v1/users/me", json={"password": "new password 1", "current_password": "nope"}, headers=auth
    )
    assert wrong.status_code == 403
    missing = await platform.gateway.patch("/api/v1/users/me", json={"password": "new password 1"}, headers=auth)
    assert missing.status_code == 422
    ok = await platform.gateway.patch(
        "/api/v1/users/me",
        json={"password": "new password 1", "current_password": "correct horse battery"},
        headers=auth,
    )
    assert ok.status_code == 200
    await platform.login("gina@example.com", "new password 1")


async def test_sql_metacharacters_in_every_string_field_are_stored_verbatim(platform: Platform) -> None:
    email = 'o\'hara;--"drop"@example.com'
    password = "p'; DELETE FROM users; -- %s %(x)s $1"
    name = "Robert'); DROP TABLE users;-- \\ %s $$ \" `"
    created = await platform.register(email, password=password, name=name)
    assert created["email"] == email and created["name"] == name
    auth = await platform.bearer(email, password)
    renamed = "x' OR '1'='1; UPDATE users SET roles = ARRAY['admin'] --"
    changed = await platform.gateway.patch("/api/v1/users/me", json={"name": renamed}, headers=auth)
    assert changed.status_code == 200 and changed.json()["name"] == renamed
    me = (await platform.gateway.get("/api/v1/users/me", headers=auth)).json()
    assert (me["email"], me["name"], me["roles"]) == (email, renamed, ["customer"])
    with psycopg.connect(platform.database_uri) as conn:
        rows = conn.execute("SELECT email, name FROM users").fetchall()
    assert rows == [(email, renamed)]


async def test_nul_characters_are_refused_not_a_server_error(platform: Platform) -> None:
    response = await platform.gateway.post(
        "/api/v1/users", json={"email": "nul@example.com", "password": "pass\u0000word", "name": "N\u0000L"}
    )
    assert response.status_code == 422


async def test_over_the_rate_limit_is_429_with_retry_after() -> None:
    async for platform in start(rate_per_second=0.5, rate_burst=3.0):
        await platform.register("hank@example.com")
        auth = await platform.bearer("hank@example.com")
        statuses = [(await platform.gateway.get("/api/v1/users/me", headers=auth)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await platform.gateway.get("/api/v1/users/me", headers=auth)
        assert limited.headers["retry-after"] == "2" and limited.json()["error"]["code"] == "rate_limited"
        platform.clock.now += 2
        assert (await platform.gateway.get("/api/v1/users/me", headers=auth)).status_code == 200


async def test_signing_keys_are_sealed_at_rest_and_a_plaintext_one_is_sealed_at_start(platform: Platform) -> None:
    from cryptography.hazmat.primitives import serialization

    first = await platform.parts.keys.signing_key()
    await platform.parts.keys.rotate()

    def stored() -> list[tuple[Any, ...]]:
        with psycopg.connect(platform.database_uri) as conn:
            return conn.execute("SELECT kid, private_key_pem, private_key_sealed, kek_id FROM signing_keys").fetchall()

    raw = first.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    rows = stored()
    assert len(rows) == 2
    for _, pem, sealed, kek_id in rows:
        assert pem is None and kek_id == platform.parts.config.sealer.kek_id
        assert b"PRIVATE KEY" not in sealed and raw not in sealed
    # A key stored before sealing existed (plaintext PEM) is sealed by the next start-up.
    pem = first.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with psycopg.connect(platform.database_uri) as conn:
        conn.execute(
            "UPDATE signing_keys SET private_key_pem = %s, private_key_sealed = NULL, kek_id = NULL WHERE kid = %s",
            [pem, first.kid],
        )
    assert await platform.parts.keys.seal_stored() == 1
    assert all(pem is None and sealed for _, pem, sealed, _ in stored())
    # Signing goes on with the rotated key, and tokens verify through the gateway.
    await platform.register("ivy@example.com")
    me = await platform.gateway.get("/api/v1/users/me", headers=await platform.bearer("ivy@example.com"))
    assert me.status_code == 200, me.text
