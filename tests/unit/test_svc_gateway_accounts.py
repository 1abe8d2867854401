"""The gateway holds every access token against its account's current state (`gateway/accounts.py`),
with stand-in services: demotion, deactivation and revocation take effect within the check
interval, not the token's lifetime; unverified accounts may not order; a users outage falls back
to what is known."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from keelson_services.auth.verifier import AccessClaims
from keelson_services.services.gateway.accounts import AccountStates
from tests.unit.test_svc_gateway import Gateway, code_of, start

CHECK_SECONDS = 5.0
ORDER = {"items": [{"sku": "SKU-1", "quantity": 1}]}


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async for gateway in start(account_check_seconds=CHECK_SECONDS):
        yield gateway


def account(**changes: Any) -> dict[str, Any]:
    return {"active": True, "roles": ["admin", "customer"], "email_verified": True, "token_version": 0} | changes


async def test_a_demoted_admin_loses_admin_access_within_the_check_interval(gw: Gateway) -> None:
    user = str(uuid.uuid4())
    gw.users.accounts[user] = account()
    admin = gw.token(sub=user, roles=["admin", "customer"])
    assert (await gw.http.get("/api/v1/admin/users", headers=admin)).status_code == 200
    gw.users.accounts[user] = account(roles=["customer"])
    gw.clock.advance(CHECK_SECONDS)
    refused = await gw.http.get("/api/v1/admin/users", headers=admin)
    assert refused.status_code == 403 and code_of(refused) == "forbidden"
    # Still a customer: the token is good for what the account holds now.
    me = await gw.http.get("/api/v1/users/me", headers=admin)
    assert me.status_code == 200 and gw.users.seen[-1].headers["x-user-roles"] == "customer"


async def test_the_state_is_looked_up_once_per_interval_not_per_request(gw: Gateway) -> None:
    user = str(uuid.uuid4())
    auth = gw.token(sub=user)
    for _ in range(5):
        assert (await gw.http.get("/api/v1/users/me", headers=auth)).status_code == 200
    assert gw.users.lookups == 1
    gw.clock.advance(CHECK_SECONDS)
    await gw.http.get("/api/v1/users/me", headers=auth)
    assert gw.users.lookups == 2


async def test_a_deactivated_account_is_refused_and_a_revoked_token_is_invalid(gw: Gateway) -> None:
    deactivated, reset, gone = (str(uuid.uuid4()) for _ in range(3))
    gw.users.accounts |= {
        deactivated: account(active=False, token_version=1),
        reset: account(token_version=1),
        gone: None,
    }
    refused = await gw.http.get("/api/v1/users/me", headers=gw.token(sub=deactivated, ver=1))
    assert refused.status_code == 403 and code_of(refused) == "account_deactivated"
    for user, version in ((reset, 0), (gone, 0), (reset, None)):
        claims: dict[str, Any] = {"sub": user} | ({"ver": version} if version is not None else {})
        response = await gw.http.get("/api/v1/users/me", headers=gw.token(**claims))
        assert response.status_code == 401 and code_of(response) == "invalid_token", user
    assert (await gw.http.get("/api/v1/users/me", headers=gw.token(sub=reset, ver=1))).status_code == 200
    assert gw.users.seen[-1].url.path == "/api/v1/users/me"


async def test_an_unverified_account_may_not_order_until_it_is_verified(gw: Gateway) -> None:
    user = str(uuid.uuid4())
    gw.users.accounts[user] = account(email_verified=False, roles=["customer"])
    auth = gw.token(sub=user, roles=["customer"], email_verified=True)  # the state decides, not the token
    headers = auth | {"Idempotency-Key": "k-1"}
    refused = await gw.http.post("/api/v1/orders", json=ORDER, headers=headers)
    assert refused.status_code == 403 and code_of(refused) == "email_not_verified" and gw.orders.seen == []
    assert (await gw.http.get("/api/v1/orders", headers=auth)).status_code == 200  # reading is fine
    gw.users.accounts[user] = account(roles=["customer"])  # verified a moment ago: looked up again, not cached
    assert (await gw.http.post("/api/v1/orders", json=ORDER, headers=headers)).status_code == 200


async def test_with_users_down_the_last_known_state_then_the_token_decide(gw: Gateway) -> None:
    known, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    gw.users.accounts[known] = account(roles=["customer"])
    token = gw.token(sub=known, roles=["admin", "customer"])
    assert (await gw.http.get("/api/v1/orders", headers=token)).status_code == 200  # JWKS and state fetched
    gw.users.down = True
    gw.clock.advance(CHECK_SECONDS)
    assert (await gw.http.get("/api/v1/admin/users", headers=token)).status_code == 403  # still a customer
    fallback = gw.token(sub=unknown, roles=["customer"], email_verified=False)
    refused = await gw.http.post("/api/v1/orders", json=ORDER, headers=fallback | {"Idempotency-Key": "k-2"})
    assert refused.status_code == 403 and code_of(refused) == "email_not_verified"
    assert (await gw.http.get("/api/v1/orders", headers=fallback)).status_code == 200


async def test_no_lookups_when_the_check_is_off() -> None:
    async for gw in start(account_check_seconds=0.0):
        user = str(uuid.uuid4())
        gw.users.accounts[user] = account(active=False)
        assert (await gw.http.get("/api/v1/users/me", headers=gw.token(sub=user))).status_code == 200
        assert gw.users.lookups == 0


async def test_the_account_operations_are_validated_then_forwarded_to_users(gw: Gateway) -> None:
    token = "kve_" + "a" * 43
    anonymous = [
        ("/api/v1/auth/logout", {"refresh_token": "krt_x"}),
        ("/api/v1/auth/verify-email", {"token": token}),
        ("/api/v1/auth/password-reset", {"email": "ada@example.com"}),
        ("/api/v1/auth/password-reset/confirm", {"token": token, "new_password": "a long new password"}),
    ]
    for path, body in anonymous:
        response = await gw.http.post(path, json=body, headers=gw.token())  # a token changes nothing here
        assert response.status_code == 200 and gw.users.seen[-1].url.path == path
        assert "x-user-id" not in gw.users.seen[-1].headers, path
    forwarded = len(gw.users.seen)
    for path, body in [
        ("/api/v1/auth/logout", {}),
        ("/api/v1/auth/verify-email", {"token": "kve_<script>"}),
        ("/api/v1/auth/password-reset", {"email": "ada@example.com", "admin": True}),
        ("/api/v1/auth/password-reset/confirm", {"token": token, "new_password": "short"}),
    ]:
        refused = await gw.http.post(path, json=body)
        assert refused.status_code == 422 and code_of(refused) == "validation_failed", path
    assert (await gw.http.post("/api/v1/auth/verify-email/resend")).status_code == 401
    assert len(gw.users.seen) == forwarded  # none of these reached users
    user = str(uuid.uuid4())
    resend = await gw.http.post("/api/v1/auth/verify-email/resend", headers=gw.token(sub=user))
    assert resend.status_code == 200 and gw.users.seen[-1].headers["x-user-id"] == user
    deleted = await gw.http.delete(f"/api/v1/admin/users/{user}", headers=gw.token(roles=["customer"]))
    assert deleted.status_code == 403 and code_of(deleted) == "forbidden"


async def test_a_slow_lookup_is_given_up_on_quickly_and_the_token_decides() -> None:
    """A users service that never answers must not hold a request for its budget (the 5 s)."""

    async def never(user_id: uuid.UUID) -> Any:
        await asyncio.sleep(30)

    states = AccountStates(never, ttl_seconds=5, lookup_seconds=0.2)
    subject = str(uuid.uuid4())
    claims = AccessClaims(
        subject=subject, roles=frozenset({"customer"}), expires_at=time.time() + 60, token_id=None, raw={"ver": 0}
    )
    started = time.monotonic()
    session = await states.session(claims)
    assert time.monotonic() - started < 1.0
    assert session.identity.user_id == subject
