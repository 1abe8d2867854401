"""The notifications service on a real PostgreSQL, with its channels' real protocols to local
stand-ins: SMS through the Twilio-shaped API to the SMS provider fake, push through Web Push to
the local push service (which checks VAPID and decrypts), email through SMTP to the sink. Events
are handed to the service's handler directly (the Kafka path is `test_svc_notifications.py`'s
and `test_svc_notifications_shop.py`'s): phone verification, devices, preferences, the template
admin API and `user.deleted`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from e2e.svc_platform import Shop, SmtpSink, smtp_sink, wait_for
from e2e.svc_postgres import fresh_database
from keelson.devstack.smssink import SmsProvider
from keelson_services.messaging import Envelope
from keelson_services.services.notifications.components import NotificationsComponents
from keelson_services.services.notifications.config import NotificationsConfig
from keelson_services.services.notifications.contacts import MAX_DEVICES
from keelson_services.services.notifications.handlers import SendFailedError
from keelson_services.services.notifications.main import create_app
from keelson_services.services.notifications.webpush import b64url
from tests.fakes.push_service import PushService, Subscription, vapid_private_key_pem

pytestmark = [pytest.mark.postgres]
URL = "http://notifications.shop.svc:8080"
ADMIN = {"X-User-Id": "admin-1", "X-User-Roles": "admin"}
PHONE = "+4915112345678"


@dataclass
class Service:
    app: FastAPI
    http: httpx.AsyncClient
    uri: str
    shop: Shop
    sms: SmsProvider
    push: PushService
    mail: SmtpSink

    @property
    def parts(self) -> NotificationsComponents:
        found: NotificationsComponents = self.app.state.notifications
        return found

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.uri) as conn:
            return conn.execute(query, params).fetchall()

    async def event(self, kind: str, **data: Any) -> Envelope:
        envelope = Envelope(str(uuid.uuid4()), self.shop.topic(kind), datetime.now(UTC), "test", data)
        await self.parts.notifier.handle(envelope)
        return envelope

    def user(self, user_id: str) -> dict[str, str]:
        return {"X-User-Id": user_id}

    async def verified_phone(self, user_id: str, phone: str = PHONE) -> None:
        assert (
            await self.http.post("/api/v1/notifications/phone", json={"phone": phone}, headers=self.user(user_id))
        ).status_code == 202
        code = self.sms.to(phone)[-1].body.split("code is ")[1][:6]
        verified = await self.http.post(
            "/api/v1/notifications/phone/verify", json={"code": code}, headers=self.user(user_id)
        )
        assert verified.status_code == 200 and verified.json()["verified"], verified.text

    async def device(self, user_id: str) -> Subscription:
        sub = self.push.subscribe()
        added = await self.http.post("/api/v1/notifications/devices", json=sub.json(), headers=self.user(user_id))
        assert added.status_code == 201, added.text
        return sub


@asynccontextmanager
async def service(**env: str) -> AsyncIterator[Service]:
    shop = Shop()
    with fresh_database("notifications") as uri, smtp_sink() as mail, SmsProvider() as sms, PushService() as push:
        settings = shop.settings("notifications", database_uri=uri, retry_backoff_seconds=(0, 0, 0, 0))
        config = NotificationsConfig.from_env(
            settings,
            mail.env() | sms.env() | {
                "KEELSON_VAPID_PRIVATE_KEY": vapid_private_key_pem(),
                "KEELSON_VAPID_SUBJECT": "mailto:ops@shop.example",
                "KEELSON_PUSH_INSECURE_ENDPOINTS": "true",  # the stand-in speaks plain HTTP on loopback
                **env,
            },
        )  # fmt: skip
        app = create_app(settings, config=config, configure_logs=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=URL,
                headers=shop.caller_headers("gateway", "notifications"),
            ) as http,
        ):
            yield Service(app, http, uri, shop, sms, push, mail)


async def test_a_phone_number_is_used_only_once_verified_with_its_code() -> None:
    async with service(KEELSON_PHONE_CODE_INTERVAL_SECONDS="0") as svc:
        me = svc.user("u-1")
        bad = await svc.http.post("/api/v1/notifications/phone", json={"phone": "0151 1234"}, headers=me)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
        assert "E.164" in str(bad.json()["error"]["details"])
        started = await svc.http.post("/api/v1/notifications/phone", json={"phone": PHONE}, headers=me)
        assert started.status_code == 202 and started.json() == {"phone": None, "verified": False, "pending": PHONE}
        (sms,) = svc.sms.to(PHONE)
        code = sms.body.split("code is ")[1][:6]
        assert code.isdigit() and sms.sender == "+15005550006"
        ((stored,),) = svc.rows("SELECT code_hash FROM phone_verifications")
        assert code.encode() not in bytes(stored)  # only a hash is kept

        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        answer = await svc.http.post("/api/v1/notifications/phone/verify", json={"code": wrong}, headers=me)
        assert answer.status_code == 422 and answer.json()["error"]["details"] == {"attempts_left": 4}
        # Until verified, an SMS-worthy event sends no SMS.
        await svc.event("user.registered", user_id="u-1", email="ada@example.com", name="Ada", phone=PHONE)
        await svc.event("order.paid", user_id="u-1", order_id=str(uuid.uuid4()), currency="EUR", total_cents=100)
        assert len(svc.sms.to(PHONE)) == 1

        ok = await svc.http.post("/api/v1/notifications/phone/verify", json={"code": code}, headers=me)
        assert ok.status_code == 200 and ok.json() == {"phone": PHONE, "verified": True, "pending": None}
        again = await svc.http.post("/api/v1/notifications/phone/verify", json={"code": code}, headers=me)
        assert again.status_code == 409  # used up
        await svc.event("order.paid", user_id="u-1", order_id="3f1c2b9a-0000", currency="EUR", total_cents=100)
        assert svc.sms.to(PHONE)[-1].body == "shop: your order 3f1c2b9a is paid (1.00 EUR)."

        # Five wrong codes void a code; an expired one is refused.
        await svc.http.post("/api/v1/notifications/phone", json={"phone": "+15550100199"}, headers=me)
        for left in (4, 3, 2, 1, 0):
            answer = await svc.http.post("/api/v1/notifications/phone/verify", json={"code": "000000"}, headers=me)
            # A 1-in-a-million chance the code is 000000: then the first try verifies it.
            assert answer.status_code == 422 and answer.json()["error"]["details"]["attempts_left"] == left
        assert (
            await svc.http.post("/api/v1/notifications/phone/verify", json={"code": "000000"}, headers=me)
        ).status_code == 409
        await svc.http.post("/api/v1/notifications/phone", json={"phone": "+15550100199"}, headers=me)
        svc.rows("UPDATE phone_verifications SET expires_at = now() - interval '1 second' RETURNING 1")
        code = svc.sms.to("+15550100199")[-1].body.split("code is ")[1][:6]
        assert (
            await svc.http.post("/api/v1/notifications/phone/verify", json={"code": code}, headers=me)
        ).status_code == 410
        assert (await svc.http.get("/api/v1/notifications/phone", headers=me)).json()["phone"] == PHONE


async def test_devices_are_validated_listed_removed_and_a_gone_one_is_forgotten() -> None:
    async with service() as svc:
        me = svc.user("u-1")
        # Codes are not sent in a loop: a second one within the interval (30 s) is refused.
        assert (
            await svc.http.post("/api/v1/notifications/phone", json={"phone": PHONE}, headers=me)
        ).status_code == 202
        again = await svc.http.post("/api/v1/notifications/phone", json={"phone": "+15550100199"}, headers=me)
        assert again.status_code == 429 and again.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(again.headers["retry-after"]) <= 30 and len(svc.sms.messages) == 1
        sub = svc.push.subscribe()
        off_curve = b64url(b"\x04" + b"\x01" * 64)  # the right length, not a point of P-256
        bad_key = sub.json() | {"keys": {"p256dh": off_curve, "auth": sub.json()["keys"]["auth"]}}
        answer = await svc.http.post("/api/v1/notifications/devices", json=bad_key, headers=me)
        location = answer.json()["error"]["details"]["errors"][0]["location"]
        assert answer.status_code == 422 and location == ["body", "keys"]
        assert "not a point on P-256" in answer.text
        short = sub.json() | {"keys": {"p256dh": "AAAA", "auth": sub.json()["keys"]["auth"]}}
        answer = await svc.http.post("/api/v1/notifications/devices", json=short, headers=me)
        location = answer.json()["error"]["details"]["errors"][0]["location"]
        assert answer.status_code == 422 and location == ["body", "keys", "p256dh"]
        answer = await svc.http.post(
            "/api/v1/notifications/devices", json=sub.json() | {"endpoint": "ftp://x/y"}, headers=me
        )
        assert answer.status_code == 422
        await svc.event("user.registered", user_id="u-1", email="ada@example.com", name="Ada")
        phone, laptop = await svc.device("u-1"), await svc.device("u-1")
        listed = (await svc.http.get("/api/v1/notifications/devices", headers=me)).json()
        assert [d["endpoint"] for d in listed["items"]] == [phone.endpoint, laptop.endpoint]
        assert listed["application_server_key"] == svc.parts.vapid.public_key if svc.parts.vapid else False
        assert (await svc.http.get("/api/v1/notifications/devices", headers=svc.user("u-2"))).json()["items"] == []

        order_id = str(uuid.uuid4())
        await svc.event("order.paid", user_id="u-1", order_id=order_id, currency="EUR", total_cents=2500)
        for sub in (phone, laptop):
            (got,) = svc.push.for_subscription(sub)
            assert got.json()["title"] == "Order paid" and order_id[:8] in got.json()["body"]
            assert got.claims["sub"] == "mailto:ops@shop.example"
        laptop.gone = 410
        await svc.event("order.paid", user_id="u-1", order_id=order_id, currency="EUR", total_cents=2500)
        assert svc.rows("SELECT endpoint FROM push_devices") == [(phone.endpoint,)]
        device_id = listed["items"][0]["id"]
        assert (
            await svc.http.delete(f"/api/v1/notifications/devices/{device_id}", headers=svc.user("u-2"))
        ).status_code == 404
        assert (await svc.http.delete(f"/api/v1/notifications/devices/{device_id}", headers=me)).status_code == 204
        assert svc.rows("SELECT count(*) FROM push_devices") == [(0,)]
        for _ in range(MAX_DEVICES):
            await svc.device("u-1")
        extra = await svc.http.post("/api/v1/notifications/devices", json=svc.push.subscribe().json(), headers=me)
        assert extra.status_code == 409 and extra.json()["error"]["code"] == "too_many_devices"
        again = await svc.http.post("/api/v1/notifications/devices", json=phone.json(), headers=me)
        assert again.status_code == 409  # a new endpoint...
        first = (await svc.http.get("/api/v1/notifications/devices", headers=me)).json()["items"][0]
        resubscribed = {"endpoint": first["endpoint"], "keys": svc.push.subscribe().json()["keys"]}
        assert (await svc.http.post("/api/v1/notifications/devices", json=resubscribed, headers=me)).status_code == 201


async def test_a_failing_sms_provider_is_retried_and_opt_outs_spare_transactional_messages() -> None:
    async with service() as svc:
        me = svc.user("u-1")
        await svc.verified_phone("u-1")
        svc.sms.fail_next(2, 503)  # retried by the resilient client, within the send
        await svc.event("order.paid", user_id="u-1", order_id="aaaaaaaa-1", currency="EUR", total_cents=100)
        # No address known yet for email (no user.registered): only SMS; it went out after two 503s.
        assert svc.sms.to(PHONE)[-1].body.startswith("shop: your order aaaaaaaa is paid")
        svc.sms.fail_next(1, 429)  # "slow down": the event is retried on its subscription's schedule
        data = {"user_id": "u-1", "order_id": "bbbbbbbb-2", "currency": "EUR", "total_cents": 100}
        paid = Envelope(str(uuid.uuid4()), svc.shop.topic("order.paid"), datetime.now(UTC), "test", data)
        with pytest.raises(SendFailedError, match=r"sms: .*429"):
            await svc.parts.notifier.handle(paid)
        await svc.parts.notifier.handle(paid)  # the retry
        assert [m.body.startswith("shop: your order bbbbbbbb") for m in svc.sms.to(PHONE)].count(True) == 1
        assert svc.rows("SELECT status, attempts FROM notifications WHERE event_id = %s", paid.id) == [("sent", 2)]

        prefs = (await svc.http.get("/api/v1/notifications/preferences", headers=me)).json()["items"]
        assert {"channel": "email", "category": "transactional", "enabled": True, "locked": True} in prefs
        refused = await svc.http.put(
            "/api/v1/notifications/preferences",
            json={"items": [{"channel": "email", "category": "transactional", "enabled": False}]}, headers=me,
        )  # fmt: skip
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "validation_failed"
        changed = await svc.http.put(
            "/api/v1/notifications/preferences",
            json={"items": [{"channel": "email", "category": "marketing", "enabled": False}]}, headers=me,
        )  # fmt: skip
        assert {"channel": "email", "category": "marketing", "enabled": False, "locked": False} in changed.json()[
            "items"
        ]
        await svc.event("user.registered", user_id="u-1", email="ada@example.com", name="Ada")  # welcome: marketing
        await svc.event("order.paid", user_id="u-1", order_id=str(uuid.uuid4()), currency="EUR", total_cents=100)
        await wait_for(lambda: svc.mail.messages, within=10)
        assert [str(m["Subject"]).split(" ")[1] for m in svc.mail.messages] == ["order"]  # the receipt only
        assert svc.rows("SELECT count(*) FROM notifications WHERE template = 'welcome'") == [(0,)]


async def test_templates_are_versioned_previewed_audited_and_localised() -> None:
    async with service() as svc:
        assert (await svc.http.get("/api/v1/admin/notifications/templates", headers=svc.user("u-1"))).status_code == 403
        listed = (await svc.http.get("/api/v1/admin/notifications/templates", headers=ADMIN)).json()["items"]
        assert {"name": "order_paid", "channel": "email", "locale": "en", "active_version": 1, "latest_version": 1} in [
            {k: i[k] for k in ("name", "channel", "locale", "active_version", "latest_version")} for i in listed
        ]
        base = "/api/v1/admin/notifications/templates/email/order_paid"
        invalid = await svc.http.post(f"{base}/en/versions", json={"subject": "Paid {{ x", "body": "b"}, headers=ADMIN)
        assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "template_invalid"
        assert "subject: line 1" in invalid.json()["error"]["message"]
        unknown = await svc.http.post(
            "/api/v1/admin/notifications/templates/email/ordr_paid/en/versions", json={"subject": "s", "body": "b"},
            headers=ADMIN,
        )  # fmt: skip
        assert unknown.status_code == 404
        v2 = {"subject": "Paid: {{ data.order_id | short }}", "body": "Thanks {{ recipient.name }}!",
              "html": "<p>Thanks {{ recipient.name }}!</p>"}  # fmt: skip
        created = await svc.http.post(f"{base}/en/versions", json=v2, headers=ADMIN)
        assert created.status_code == 201 and created.json()["version"] == 2 and created.json()["active"]
        german = {"subject": "Bezahlt: {{ data.order_id | short }}", "body": "Danke {{ recipient.name }}!"}
        assert (await svc.http.post(f"{base}/de/versions", json=german, headers=ADMIN)).status_code == 201

        sample = {"locale": "de-AT", "data": {"order_id": "12345678-9"}, "recipient": {"name": "Ada\n<b>"}}
        preview = await svc.http.post(
            "/api/v1/admin/notifications/preview/email/order_paid", json=sample, headers=ADMIN
        )
        assert preview.json() | {"html": None} == {
            "name": "order_paid", "channel": "email", "locale": "de", "version": 1,
            "subject": "Bezahlt: 12345678", "body": "Danke Ada\n<b>!", "html": None,
        }  # fmt: skip
        broken = await svc.http.post(
            "/api/v1/admin/notifications/preview/email/order_paid", json={"data": {}}, headers=ADMIN
        )
        assert broken.status_code == 422 and broken.json()["error"]["code"] == "template_render_failed"
        assert svc.mail.messages == []  # previews send nothing

        await svc.event("user.registered", user_id="u-de", email="de@example.com", name="Jörg", locale="de-AT")
        await svc.event("user.registered", user_id="u-en", email="en@example.com", name="Ada")
        for user in ("u-de", "u-en"):
            await svc.event("order.paid", user_id=user, order_id="abcdef12-3", currency="EUR", total_cents=100)
        await wait_for(lambda: len(svc.mail.messages) == 4, within=10)
        subjects = {str(m["To"]): str(m["Subject"]) for m in svc.mail.messages if "abcdef12" in str(m["Subject"])}
        assert subjects == {"de@example.com": "Bezahlt: abcdef12", "en@example.com": "Paid: abcdef12"}
        used = "SELECT locale, template_version FROM notifications WHERE template = 'order_paid' AND channel = 'email'"
        assert svc.rows(used + " ORDER BY locale") == [("de", 1), ("en", 2)]

        rolled = await svc.http.post(f"{base}/en/activate", json={"version": 1}, headers=ADMIN)
        assert rolled.status_code == 200 and rolled.json()["active"] and rolled.json()["version"] == 1
        assert (await svc.http.post(f"{base}/en/activate", json={"version": 9}, headers=ADMIN)).status_code == 404
        await svc.event("order.paid", user_id="u-en", order_id="fedcba98-7", currency="EUR", total_cents=100)
        await wait_for(lambda: len(svc.mail.messages) == 5, within=10)
        assert str(svc.mail.messages[-1]["Subject"]) == "Your order fedcba98 is paid"

        versions = (await svc.http.get(f"{base}/en", headers=ADMIN)).json()["items"]
        assert [(v["version"], v["active"], v["created_by"]) for v in versions] == [
            (1, True, "seed"),
            (2, False, "admin-1"),
        ]
        audit = (await svc.http.get("/api/v1/admin/notifications/audit", headers=ADMIN)).json()["items"]
        mine = [
            (a["action"], a["locale"], a["version"], a["previous_version"]) for a in audit if a["actor"] == "admin-1"
        ]
        assert mine == [("activate", "en", 1, 2), ("activate", "de", 1, None), ("create", "de", 1, None),
                        ("activate", "en", 2, 1), ("create", "en", 2, 1)]  # fmt: skip
        assert any(a["action"] == "seed" and a["name"] == "order_paid" for a in audit) or len(audit) == 100


async def test_a_restart_seeds_only_what_is_new_and_keeps_the_admins_versions() -> None:
    async with service() as svc:
        base = "/api/v1/admin/notifications/templates/sms/order_paid/en"
        await svc.http.post(f"{base}/versions", json={"body": "v2 {{ platform }}"}, headers=ADMIN)
        assert await svc.parts.templates.seed(svc.parts.renderer) == 0
        assert [v["version"] for v in (await svc.http.get(base, headers=ADMIN)).json()["items"]] == [1, 2]


async def test_user_deleted_erases_contacts_preferences_and_contents() -> None:
    async with service() as svc:
        await svc.event("user.registered", user_id="u-1", email="ada@example.com", name="Ada")
        await svc.verified_phone("u-1")
        await svc.device("u-1")
        await svc.http.put(
            "/api/v1/notifications/preferences",
            json={"items": [{"channel": "sms", "category": "marketing", "enabled": False}]}, headers=svc.user("u-1"),
        )  # fmt: skip
        paid = await svc.event("order.paid", user_id="u-1", order_id=str(uuid.uuid4()), currency="EUR", total_cents=1)
        await svc.event("user.registered", user_id="u-2", email="bob@example.com", name="Bob")
        assert svc.rows("SELECT count(*) FROM notifications WHERE user_id = 'u-1'") == [(4,)]  # welcome + 3 channels

        await svc.event("user.deleted", user_id="u-1")
        for table in ("recipients", "phone_verifications", "push_devices", "preferences"):
            assert svc.rows(f"SELECT count(*) FROM {table} WHERE user_id = 'u-1'") == [(0,)], table
        rows = svc.rows(
            "SELECT user_id, recipient, subject, body, status FROM notifications WHERE event_id = %s", paid.id
        )
        assert rows == [("", "", None, "", "sent")] * 3  # counted, not readable
        assert svc.rows("SELECT count(*) FROM recipients WHERE user_id = 'u-2'") == [(1,)]  # others untouched
        dump = str(svc.rows("SELECT * FROM notifications")) + str(svc.rows("SELECT * FROM erased_users"))
        assert "ada@example.com" not in dump and PHONE not in dump and "u-1" not in dump
        # A late event about the erased user is dropped, not retried until a user.registered.
        sent = len(svc.sms.messages)
        await svc.event("order.paid", user_id="u-1", order_id=str(uuid.uuid4()), currency="EUR", total_cents=1)
        assert len(svc.sms.messages) == sent
        await svc.event("user.registered", user_id="u-1", email="ada@example.com", name="Ada")  # replayed
        assert svc.rows("SELECT count(*) FROM recipients WHERE user_id = 'u-1'") == [(0,)]
        history = await svc.http.get("/api/v1/notifications", headers=svc.user("u-1"))
        assert history.json()["items"] == []


async def test_push_endpoints_are_https_unless_the_service_is_told_otherwise() -> None:
    async with service(KEELSON_PUSH_INSECURE_ENDPOINTS="false") as svc:
        sub = svc.push.subscribe()  # the stand-in's endpoint is plain http
        answer = await svc.http.post("/api/v1/notifications/devices", json=sub.json(), headers=svc.user("u-1"))
        assert answer.status_code == 422 and "must be an https URL" in answer.text
        secure = sub.json() | {"endpoint": "https://push.example.net/wpush/v2/abc"}
        assert (
            await svc.http.post("/api/v1/notifications/devices", json=secure, headers=svc.user("u-1"))
        ).status_code == 201


async def test_the_verification_message_is_a_template_too() -> None:
    async with service() as svc:
        preview = await svc.http.post(
            "/api/v1/admin/notifications/preview/sms/phone_verification", json={}, headers=ADMIN
        )
        assert preview.status_code == 200 and "123456" in preview.json()["body"]
        broken = {"body": "Code {{ code }} for {{ data.order_id }}"}  # parses; no order in a verification
        versions = "/api/v1/admin/notifications/templates/sms/phone_verification/en/versions"
        assert (await svc.http.post(versions, json=broken, headers=ADMIN)).status_code == 201
        answer = await svc.http.post("/api/v1/notifications/phone", json={"phone": PHONE}, headers=svc.user("u-1"))
        assert answer.status_code == 503 and "v2" in answer.json()["error"]["details"]["reason"]
        assert svc.sms.messages == []
        assert svc.rows("SELECT count(*) FROM phone_verifications") == [(0,)]  # no code no one got
        fixed = {"body": "{{ platform }} code {{ code }}"}
        assert (await svc.http.post(versions, json=fixed, headers=ADMIN)).status_code == 201
        answer = await svc.http.post("/api/v1/notifications/phone", json={"phone": PHONE}, headers=svc.user("u-1"))
        assert answer.status_code == 202 and svc.sms.messages[0].body.startswith("shop code ")  # at once

        svc.sms.fail_next(5, 500)  # the provider refuses: 502, and no pending code either
        again = await svc.http.post("/api/v1/notifications/phone", json={"phone": PHONE}, headers=svc.user("u-2"))
        assert again.status_code == 502 and again.json()["error"]["code"] == "sms_not_sent"
        assert "code" not in again.json()["error"]["details"]["reason"].lower().replace("provider code", "")
        assert svc.rows("SELECT count(*) FROM phone_verifications WHERE user_id = 'u-2'") == [(0,)]
