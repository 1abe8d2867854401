"""Accounts (docs/accounts.md) through the gateway, against the users service on a real
PostgreSQL: logout, email verification, password reset, the bound on demotion and deactivation,
and erasure. Kafka is not needed here: the events are read from the users service's outbox
(`test_journey.py` follows them through the broker to the email and to orders)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import psycopg
import pytest

from e2e.test_svc_users_gateway import Platform, start
from keelson_services.messaging import EventProducer
from keelson_services.services.users.manage import set_role

pytestmark = pytest.mark.postgres

EVENTS = ("user.registered", "user.verification-requested", "user.password-reset-requested", "user.deleted")
PASSWORD = "correct horse battery"
CHECK_SECONDS = 5.0  # the gateway's default account check interval


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    async for running in start(publishes=tuple(f"ecommerce.{event}" for event in EVENTS)):
        yield running


def query(platform: Platform, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(platform.database_uri) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def events(platform: Platform, event: str, user_id: str) -> list[dict[str, Any]]:
    rows = query(platform, "SELECT data FROM outbox WHERE event = %s AND key = %s ORDER BY id", event, user_id)
    return [row[0] for row in rows]


def last_token(platform: Platform, event: str, user_id: str) -> str:
    token: str = events(platform, event, user_id)[-1]["token"]
    return token


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def code(response: Any) -> str:
    found: str = response.json()["error"]["code"]
    return found


async def test_logout_revokes_the_refresh_token_and_its_session_only(platform: Platform) -> None:
    await platform.register("lou@example.com")
    phone, laptop = await platform.login("lou@example.com"), await platform.login("lou@example.com")
    refreshed = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refreshed.status_code == 200
    current = refreshed.json()["refresh_token"]

    out = await platform.gateway.post("/api/v1/auth/logout", json={"refresh_token": current})
    assert out.status_code == 204
    for token in (current, phone["refresh_token"]):  # the token and its whole family
        refused = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert refused.status_code == 401 and code(refused) == "invalid_refresh_token"
    again = await platform.gateway.post("/api/v1/auth/logout", json={"refresh_token": current})
    unknown = await platform.gateway.post("/api/v1/auth/logout", json={"refresh_token": "krt_unknown"})
    assert again.status_code == unknown.status_code == 204
    # The other session goes on.
    other = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert other.status_code == 200
    bad = await platform.gateway.post("/api/v1/auth/logout", json={"refresh_token": ""})
    assert bad.status_code == 422 and code(bad) == "validation_failed"


async def test_a_verification_link_is_stored_hashed_works_once_and_expires(platform: Platform) -> None:
    ada = await platform.register("ada@example.com")
    assert ada["email_verified"] is False
    token = last_token(platform, "user.verification-requested", ada["id"])
    assert token.startswith("kve_")
    stored = query(platform, "SELECT token_hash FROM account_tokens WHERE user_id = %s", ada["id"])
    assert stored == [(hashlib.sha256(token.encode()).digest(),)]

    wrong_kind = await platform.gateway.post("/api/v1/auth/password-reset/confirm", json={
        "token": token, "new_password": "another password",
    })  # fmt: skip
    assert wrong_kind.status_code == 401 and code(wrong_kind) == "invalid_link"
    assert (await platform.gateway.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 204
    me = await platform.gateway.get("/api/v1/users/me", headers=await platform.bearer("ada@example.com"))
    assert me.json()["email_verified"] is True
    reused = await platform.gateway.post("/api/v1/auth/verify-email", json={"token": token})
    assert reused.status_code == 401 and code(reused) == "invalid_link"
    resend = await platform.gateway.post(
        "/api/v1/auth/verify-email/resend", headers=await platform.bearer(ada["email"])
    )
    assert resend.status_code == 409 and code(resend) == "email_already_verified"

    bob = await platform.register("bob@example.com")
    expired = last_token(platform, "user.verification-requested", bob["id"])
    query(platform, "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s", bob["id"])
    refused = await platform.gateway.post("/api/v1/auth/verify-email", json={"token": expired})
    assert refused.status_code == 401 and code(refused) == "invalid_link"
    malformed = await platform.gateway.post("/api/v1/auth/verify-email", json={"token": "kve_<script>"})
    assert malformed.status_code == 422


async def test_a_new_link_replaces_the_old_one_and_links_are_not_sent_too_often(platform: Platform) -> None:
    cy = await platform.register("cy@example.com")
    auth = await platform.bearer("cy@example.com")
    first = last_token(platform, "user.verification-requested", cy["id"])
    soon = await platform.gateway.post("/api/v1/auth/verify-email/resend", headers=auth)
    assert soon.status_code == 202 and len(events(platform, "user.verification-requested", cy["id"])) == 1
    query(platform, "UPDATE account_tokens SET created_at = now() - interval '2 minutes' WHERE user_id = %s", cy["id"])
    assert (await platform.gateway.post("/api/v1/auth/verify-email/resend", headers=auth)).status_code == 202
    second = last_token(platform, "user.verification-requested", cy["id"])
    assert second != first
    assert (await platform.gateway.post("/api/v1/auth/verify-email", json={"token": first})).status_code == 401
    assert (await platform.gateway.post("/api/v1/auth/verify-email", json={"token": second})).status_code == 204


async def test_the_relay_drops_the_token_from_the_outbox_once_published(platform: Platform) -> None:
    dee = await platform.register("dee@example.com")
    token = last_token(platform, "user.verification-requested", dee["id"])

    class Producer:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict[str, Any]]] = []

        async def publish(self, event: str, data: dict[str, Any], **_: Any) -> None:
            self.sent.append((event, data))

    producer = Producer()
    assert platform.parts.relay is not None
    assert await platform.parts.relay.drain(cast(EventProducer, producer)) == 2
    assert [event for event, _ in producer.sent] == ["user.registered", "user.verification-requested"]
    assert producer.sent[1][1]["token"] == token  # published with the token, to notifications
    kept = events(platform, "user.verification-requested", dee["id"])[0]
    assert "token" not in kept and kept["user_id"] == dee["id"]


async def test_a_password_reset_is_one_time_expiring_and_ends_every_session(platform: Platform) -> None:
    eve = await platform.register("eve@example.com")
    sessions = [await platform.login("eve@example.com") for _ in range(2)]
    assert (await platform.gateway.get("/api/v1/users/me", headers=bearer(sessions[0]))).status_code == 200

    for email in ("nobody@example.com", "EVE@example.com"):  # the same answer, account or not
        asked = await platform.gateway.post("/api/v1/auth/password-reset", json={"email": email})
        assert asked.status_code == 202 and asked.content == b""
    assert len(events(platform, "user.password-reset-requested", eve["id"])) == 1
    token = last_token(platform, "user.password-reset-requested", eve["id"])
    assert token.startswith("kpr_")

    short = await platform.gateway.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert short.status_code == 422
    done = await platform.gateway.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "a brand new password"}
    )
    assert done.status_code == 204
    again = await platform.gateway.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "yet another password"}
    )
    assert again.status_code == 401 and code(again) == "invalid_link"

    for session in sessions:
        refused = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refused.status_code == 401
    platform.clock.now += CHECK_SECONDS  # the gateway's cached state of the account expires
    old = await platform.gateway.get("/api/v1/users/me", headers=bearer(sessions[0]))
    assert old.status_code == 401 and code(old) == "invalid_token"
    wrong = await platform.gateway.post("/api/v1/auth/token", json={"email": "eve@example.com", "password": PASSWORD})
    assert wrong.status_code == 401
    fresh = await platform.login("eve@example.com", "a brand new password")
    me = await platform.gateway.get("/api/v1/users/me", headers=bearer(fresh))
    assert me.status_code == 200 and me.json()["email_verified"] is True  # the link reached the mailbox

    query(platform, "UPDATE account_tokens SET created_at = now() - interval '2 minutes'")
    await platform.gateway.post("/api/v1/auth/password-reset", json={"email": "eve@example.com"})
    expired = last_token(platform, "user.password-reset-requested", eve["id"])
    query(platform, "UPDATE account_tokens SET expires_at = now() WHERE used_at IS NULL")
    late = await platform.gateway.post(
        "/api/v1/auth/password-reset/confirm", json={"token": expired, "new_password": "a late new password"}
    )
    assert late.status_code == 401 and code(late) == "invalid_link"


async def test_demotion_and_deactivation_reach_the_gateway_within_its_check_interval(platform: Platform) -> None:
    await platform.register("root@example.com")
    fay = await platform.register("fay@example.com")
    for email in ("root@example.com", "fay@example.com"):
        await set_role(platform.parts.db, email, "admin", granted=True)
    root, fay_admin = await platform.bearer("root@example.com"), await platform.bearer("fay@example.com")
    # An admin operation of another service: the gateway's own role check decides (orders is not
    # running here, so a request let through fails further on, but not with 403).
    ship = f"/api/v1/admin/orders/{uuid.uuid4()}/ship"
    assert (await platform.gateway.post(ship, headers=fay_admin)).status_code != 403

    demoted = await platform.gateway.patch(
        f"/api/v1/admin/users/{fay['id']}", json={"roles": ["customer"]}, headers=root
    )
    assert demoted.status_code == 200
    platform.clock.now += CHECK_SECONDS
    refused = await platform.gateway.post(ship, headers=fay_admin)
    assert refused.status_code == 403 and code(refused) == "forbidden"

    off = await platform.gateway.patch(f"/api/v1/admin/users/{fay['id']}", json={"active": False}, headers=root)
    assert off.status_code == 200
    platform.clock.now += CHECK_SECONDS
    gone = await platform.gateway.get("/api/v1/orders", headers=fay_admin)
    assert gone.status_code == 401 and code(gone) == "invalid_token"  # deactivation ended its sessions
    back = await platform.gateway.patch(f"/api/v1/admin/users/{fay['id']}", json={"active": True}, headers=root)
    assert back.status_code == 200
    platform.clock.now += CHECK_SECONDS
    still = await platform.gateway.get("/api/v1/users/me", headers=fay_admin)
    assert still.status_code == 401  # reactivation does not revive the old tokens


async def test_deleting_an_account_erases_its_personal_data_and_announces_it(platform: Platform) -> None:
    gil = await platform.register("gil@example.com", name="Gil Personal")
    tokens = await platform.login("gil@example.com")
    assert platform.parts.relay is not None
    query(platform, "UPDATE outbox SET published_at = now()")  # as if the relay had published them
    assert (await platform.gateway.delete("/api/v1/users/me", headers=bearer(tokens))).status_code == 204

    [(email, name, password_hash, active, erased_at)] = query(
        platform, "SELECT email, name, password_hash, active, erased_at FROM users WHERE id = %s", gil["id"]
    )
    assert (email, name, password_hash, active) == (f"erased-{gil['id']}@erased.invalid", "", "", False)
    assert erased_at is not None
    for table in ("refresh_tokens", "account_tokens"):
        assert query(platform, f"SELECT count(*) FROM {table} WHERE user_id = %s", gil["id"]) == [(0,)]
    kept = query(platform, "SELECT event, data FROM outbox WHERE key = %s", gil["id"])
    assert kept == [("user.deleted", {"user_id": gil["id"]})]  # the published user.registered is gone

    me = await platform.gateway.get("/api/v1/users/me", headers=bearer(tokens))
    assert me.status_code == 401
    login = await platform.gateway.post("/api/v1/auth/token", json={"email": "gil@example.com", "password": PASSWORD})
    assert login.status_code == 401
    refresh = await platform.gateway.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    again = await platform.register("gil@example.com")  # the email is free again: it is no longer theirs
    assert again["id"] != gil["id"]


async def test_an_admin_deletes_an_account_once_and_not_their_own(platform: Platform) -> None:
    root = await platform.register("root@example.com")
    hal = await platform.register("hal@example.com")
    await set_role(platform.parts.db, "root@example.com", "admin", granted=True)
    admin = await platform.bearer("root@example.com")
    customer = await platform.bearer("hal@example.com")
    forbidden = await platform.gateway.delete(f"/api/v1/admin/users/{root['id']}", headers=customer)
    assert forbidden.status_code == 403
    own = await platform.gateway.delete(f"/api/v1/admin/users/{root['id']}", headers=admin)
    assert own.status_code == 409
    for _ in range(2):  # erasing an erased account is done already
        assert (await platform.gateway.delete(f"/api/v1/admin/users/{hal['id']}", headers=admin)).status_code == 204
    assert len(events(platform, "user.deleted", hal["id"])) == 1
    missing = await platform.gateway.delete(f"/api/v1/admin/users/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404 and code(missing) == "not_found"
    reactivate = await platform.gateway.patch(f"/api/v1/admin/users/{hal['id']}", json={"active": True}, headers=admin)
    assert reactivate.status_code == 404


async def test_registration_refuses_names_with_control_characters(platform: Platform) -> None:
    """Issue 13 §5, already so (`contracts/text.py`): a name goes into email headers and subjects."""
    for name in ("Ada\r\nBcc: eve@example.com", "Ada\u0085", "Ada\u2028", "Ada\tL", "Ada\u007f"):
        body = {"email": "ctl@example.com", "password": PASSWORD, "name": name}
        refused = await platform.gateway.post("/api/v1/users", json=body)
        assert refused.status_code == 422 and code(refused) == "validation_failed", repr(name)
        renamed = await platform.users.post("/api/v1/users", json=body)  # the service's own check too
        assert renamed.status_code == 422, repr(name)
    assert query(platform, "SELECT count(*) FROM users") == [(0,)]
