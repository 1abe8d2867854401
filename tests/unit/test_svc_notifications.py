"""The notifications service without I/O: templates per channel, the catalogue, the handlers'
idempotency by event id (with an in-memory stand-in for its tables), email building, settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import jinja2
import pytest

from keelson_services.contracts.notifications import PhoneRequest
from keelson_services.messaging import Envelope, PermanentError
from keelson_services.observability import tracing
from keelson_services.services.notifications.catalogue import CATALOGUE, category, routes
from keelson_services.services.notifications.config import NotificationsConfig, SmtpConfig
from keelson_services.services.notifications.handlers import Notifier, RecipientNotKnownError, SendFailedError
from keelson_services.services.notifications.rendering import (
    CHANNELS,
    SMS_LENGTH,
    Renderer,
    TemplateInvalidError,
    TemplateSource,
    money,
)
from keelson_services.services.notifications.repository import Recipient
from keelson_services.services.notifications.senders import Outgoing, RecordingSender, SmtpSender
from keelson_services.services.notifications.template_store import locales
from keelson_services.settings import SettingsError
from tests.unit.svc_helpers import settings

ORDER = "3f1c2b9a-0000-4000-8000-000000000000"


def context(**data: Any) -> dict[str, Any]:
    return {
        "data": {"order_id": ORDER, "user_id": "u-1", "currency": "EUR", "total_cents": 123456} | data,
        "recipient": {"user_id": "u-1", "email": "ada@example.com", "name": "Ada", "phone": "+15550100"},
        "event": {"id": "e-1", "type": "ecommerce.order.paid"},
        "platform": "shop",
    }


def test_every_catalogue_entry_has_its_templates_and_renders() -> None:
    renderer = Renderer()
    data = {"amount_cents": 100, "refunded_cents": 50, "failure_message": "declined"}
    data |= {"token": "kve_x", "links_url": "https://shop.example/account", "expires_at": "2026-12-07T12:00:00+00:00"}
    for event, pairs in CATALOGUE.items():
        for channel, template in pairs:
            assert channel in CHANNELS and renderer.has(channel, template), (event, channel, template)
            rendered = renderer.render(channel, template, context(**data))
            assert rendered.body.strip() and "None" not in rendered.body
            assert (rendered.subject is None) == (channel == "sms")


def test_an_email_has_a_subject_text_and_escaped_html() -> None:
    rendered = Renderer().render("email", "order_paid", context())
    assert rendered.subject == "Your order 3f1c2b9a is paid"
    assert "1,234.56 EUR" in rendered.body and ORDER in rendered.body
    hostile = context()
    hostile["recipient"]["name"] = "<script>alert(1)</script>"
    html = Renderer().render("email", "welcome", hostile).html
    assert html is not None and "&lt;script&gt;" in html and "<script>" not in html
    text = Renderer().render("email", "welcome", hostile).body
    assert "<script>alert(1)</script>" in text  # plain text is text: nothing to escape


def test_sms_is_one_message_and_push_has_a_title() -> None:
    sms = Renderer().render("sms", "payment_failed", context(amount_cents=999))
    assert sms.body == "shop: your payment of 9.99 EUR for order 3f1c2b9a failed." and len(sms.body) <= SMS_LENGTH
    long = Renderer(jinja2.DictLoader({"sms/long.txt": "x" * 400})).render("sms", "long", {})
    assert len(long.body) == SMS_LENGTH and long.body.endswith("…")
    push = Renderer().render("push", "order_paid", context())
    assert (push.subject, push.body) == ("Order paid", "Your order 3f1c2b9a is paid and on its way.")


def test_a_template_that_does_not_fit_its_event_fails_loudly() -> None:
    with pytest.raises(jinja2.UndefinedError):
        Renderer().render("email", "order_paid", {"platform": "shop", "recipient": {}, "data": {}})


def test_money_and_the_catalogue() -> None:
    assert (money(5, "EUR"), money(123456789, "USD"), money(-250, "EUR")) == (
        "0.05 EUR", "1,234,567.89 USD", "-2.50 EUR",
    )  # fmt: skip
    assert routes("ecommerce.order.paid") == routes("order.paid") == (
        ("email", "order_paid"), ("push", "order_paid"), ("sms", "order_paid"),
    )  # fmt: skip
    assert routes("ecommerce.order.shipped") == (("email", "order_shipped"),)
    assert routes("ecommerce.payment.completed") == () and routes("ecommerce.order.returned") == ()


class MemoryNotifications:
    """The repository's contract, in memory: one row per (event id, channel)."""

    def __init__(self) -> None:
        self.recipients: dict[str, Recipient] = {}
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.locked: set[tuple[str, str]] = set()  # (event id, channel) being sent
        self.verified: set[str] = set()  # users whose phone is verified
        self.with_devices: set[str] = {"u-1"}  # users with push devices
        self.off: set[tuple[str, str, str]] = set()  # (user, channel, category) turned off
        self.erased_users: set[str] = set()

    async def remember(
        self, user_id: str, *, email: str | None, name: str | None, phone: str | None, locale: str | None = None
    ) -> None:
        self.recipients[user_id] = Recipient(user_id, email, name, phone, locale=locale)

    async def recipient(self, user_id: str) -> Recipient | None:
        found = self.recipients.get(user_id)
        if found is None:
            return None
        return Recipient(
            found.user_id, found.email, found.name, found.phone, user_id in self.verified, found.locale,
            user_id in self.with_devices,
        )  # fmt: skip

    async def allows(self, user_id: str, channel: str, category: str) -> bool:
        return (user_id, channel, category) not in self.off

    async def erase(self, user_id: str) -> None:
        self.recipients.pop(user_id, None)
        self.erased_users.add(user_id)

    async def erased(self, user_id: str) -> bool:
        return user_id in self.erased_users

    async def status(self, event_id: str, channel: str) -> str | None:
        row = self.rows.get((event_id, channel))
        return row["status"] if row else None

    async def claim(self, *, event_id: str, channel: str, **fields: Any) -> UUID | None:
        row = self.rows.get((event_id, channel))
        if row is None:
            row = self.rows[(event_id, channel)] = {"id": uuid.uuid4(), "attempts": 0, **fields}
        elif row["status"] == "sent":
            return None
        row |= {"status": "sending", "attempts": row["attempts"] + 1}
        return UUID(str(row["id"]))

    @asynccontextmanager
    async def sending(self, event_id: str, channel: str) -> AsyncIterator[bool]:
        key = (event_id, channel)
        mine = key not in self.locked
        self.locked.add(key)
        try:
            yield mine
        finally:
            if mine:
                self.locked.discard(key)

    def _by_id(self, notification_id: UUID) -> dict[str, Any]:
        return next(r for r in self.rows.values() if r["id"] == notification_id)

    async def sent(self, notification_id: UUID, provider_id: str) -> None:
        self._by_id(notification_id)["status"] = "sent"

    async def failed(self, notification_id: UUID, error: str) -> None:
        self._by_id(notification_id).update(status="failed", error=error)


def event(kind: str, **data: Any) -> Envelope:
    return Envelope(str(uuid.uuid4()), f"ecommerce.{kind}", datetime.now(UTC), "test", {"user_id": "u-1"} | data)


def notifier() -> tuple[Notifier, MemoryNotifications, dict[str, RecordingSender]]:
    repo = MemoryNotifications()
    senders = {c: RecordingSender(c) for c in ("email", "sms", "push")}
    return Notifier(repo, Renderer(), senders, platform="shop"), repo, senders  # type: ignore[arg-type]


async def test_a_redelivered_event_never_sends_twice() -> None:
    n, _, senders = notifier()
    welcome = event("user.registered", email="ada@example.com", name="Ada")
    paid = event("order.paid", order_id=ORDER, currency="EUR", total_cents=100)
    for e in (welcome, paid, welcome, paid, paid):
        await n.handle(e)
    assert [m.rendered.template for m in senders["email"].sent] == ["welcome", "order_paid"]
    assert [m.recipient for m in senders["push"].sent] == ["u-1"]
    assert senders["sms"].sent == []  # no phone number known: no SMS


@pytest.mark.parametrize(
    ("kind", "template", "page"),
    [
        ("user.verification-requested", "verify_email", "verify-email"),
        ("user.password-reset-requested", "password_reset", "reset-password"),
    ],
)
async def test_a_link_is_emailed_with_its_token_and_recorded_without_it(kind: str, template: str, page: str) -> None:
    n, repo, senders = notifier()
    await n.handle(event("user.registered", email="ada@example.com", name="Ada", phone="+15550100"))
    token = "kpr_" + "s3cret" * 7
    link = event(kind, token=token, links_url="https://shop.example/account", expires_at="2026-12-07T12:00:00+00:00")
    await n.handle(link)
    [sent] = [m for m in senders["email"].sent if m.rendered.template == template]
    assert f"https://shop.example/account/{page}?token={token}" in sent.rendered.body
    assert sent.rendered.html is not None and token in sent.rendered.html
    assert len(senders["sms"].sent) == len(senders["push"].sent) == 0  # a link goes by email only
    record = repo.rows[(link.id, "email")]
    assert token not in record["body"] and "token=[redacted]" in record["body"]
    assert token not in (record["subject"] or "")


async def test_only_a_verified_phone_and_a_user_with_devices_get_sms_and_push() -> None:
    n, repo, senders = notifier()
    repo.with_devices.clear()
    await n.handle(event("user.registered", email="ada@example.com", name="Ada", phone="+15550100"))
    await n.handle(event("order.paid", order_id=ORDER, currency="EUR", total_cents=100))
    assert (len(senders["email"].sent), senders["sms"].sent, senders["push"].sent) == (2, [], [])
    repo.verified.add("u-1")
    repo.with_devices.add("u-1")
    await n.handle(event("order.paid", order_id=ORDER, currency="EUR", total_cents=100))
    assert [m.recipient for m in senders["sms"].sent] == ["+15550100"]
    assert [m.recipient for m in senders["push"].sent] == ["u-1"]


async def test_an_opt_out_stops_marketing_but_never_transactional_messages() -> None:
    n, repo, senders = notifier()
    repo.off |= {("u-1", "email", "marketing"), ("u-1", "email", "transactional")}
    await n.handle(event("user.registered", email="ada@example.com", name="Ada"))
    assert senders["email"].sent == []  # the welcome is marketing: turned off
    await n.handle(event("order.paid", order_id=ORDER, currency="EUR", total_cents=100))
    assert [m.rendered.template for m in senders["email"].sent] == ["order_paid"]  # transactional: sent anyway
    assert category("ecommerce.user.registered") == "marketing" and category("order.cancelled") == "transactional"
    assert category("ecommerce.user.password_reset_requested") == "transactional"  # unknown: the safe side


async def test_user_deleted_erases_and_later_events_about_them_are_dropped() -> None:
    n, repo, senders = notifier()
    await n.handle(event("user.registered", email="ada@example.com", name="Ada"))
    await n.handle(event("user.deleted"))
    assert await repo.recipient("u-1") is None
    await n.handle(event("order.paid", order_id=ORDER, currency="EUR", total_cents=100))  # no retry, no send
    await n.handle(event("user.registered", email="ada@example.com", name="Ada"))  # a replay
    assert await repo.recipient("u-1") is None
    assert [m.rendered.template for m in senders["email"].sent] == ["welcome"]


async def test_a_failed_channel_is_retried_alone_and_the_others_are_not_resent() -> None:
    n, repo, senders = notifier()
    repo.verified.add("u-1")
    await n.handle(event("user.registered", email="ada@example.com", name="Ada", phone="+15550100"))
    senders["email"].fail_with = ConnectionRefusedError("smtp down")
    failed = event("payment.failed", order_id=ORDER, currency="EUR", amount_cents=100)
    with pytest.raises(SendFailedError, match="email: ConnectionRefusedError: smtp down"):
        await n.handle(failed)
    assert (len(senders["sms"].sent), len(senders["push"].sent)) == (1, 1)
    senders["email"].fail_with = None
    await n.handle(failed)  # the retry
    assert (len(senders["email"].sent), len(senders["sms"].sent), len(senders["push"].sent)) == (2, 1, 1)
    assert repo.rows[(failed.id, "email")]["attempts"] == 2


async def test_a_send_cut_short_by_a_crash_is_sent_again_under_its_id_and_a_live_one_is_left_alone() -> None:
    n, repo, senders = notifier()
    await n.handle(event("user.registered", email="ada@example.com", name="Ada"))
    paid = event("order.paid", order_id=ORDER, currency="EUR", total_cents=100)
    repo.locked.add((paid.id, "email"))  # another consumer is sending the email right now
    with pytest.raises(SendFailedError, match="email: being sent by another consumer"):
        await n.handle(paid)
    assert [m.rendered.template for m in senders["email"].sent] == ["welcome"] and len(senders["push"].sent) == 1
    # Its sender died mid-send: the row says `sending`, the lock died with it. The redelivered
    # event sends the email again under the same notification id (so the same Message-ID), once.
    repo.locked.clear()
    crashed = uuid.uuid4()
    repo.rows[(paid.id, "email")] = {"id": crashed, "attempts": 1, "status": "sending"}
    await n.handle(paid)
    await n.handle(paid)
    assert [m.notification_id for m in senders["email"].sent[1:]] == [crashed]
    assert repo.rows[(paid.id, "email")] | {"status": "sent", "attempts": 2} == repo.rows[(paid.id, "email")]
    assert len(senders["push"].sent) == 1


async def test_an_unknown_recipient_is_retried_and_a_bad_event_is_permanent() -> None:
    n, _, _ = notifier()
    with pytest.raises(RecipientNotKnownError):
        await n.handle(event("order.paid", order_id=ORDER, currency="EUR", total_cents=1))
    with pytest.raises(PermanentError):
        await n.handle(Envelope("e", "ecommerce.order.paid", datetime.now(UTC), "test", {"order_id": ORDER}))
    await n.handle(event("user.registered", email="ada@example.com", name="Ada"))
    with pytest.raises(PermanentError, match="template email/order_paid"):
        await n.handle(event("order.paid", order_id=ORDER))  # no total: the template cannot render it


async def test_the_trace_travels_into_the_email() -> None:
    n, _, senders = notifier()
    with tracing.activated(tracing.TraceContext("ab" * 16, "cd" * 8)):
        await n.handle(event("user.registered", email="ada@example.com", name="Ada"))
    (sent,) = senders["email"].sent
    assert sent.trace_id == "ab" * 16
    mail = SmtpSender(SmtpConfig("smtp.invalid"), sender="shop <no-reply@shop>").message(sent)
    assert mail["X-Trace-Id"] == "ab" * 16 and mail["To"] == "ada@example.com"
    assert mail["Message-ID"] == f"<{sent.notification_id}@keelson.notifications>"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]


def test_settings_from_env() -> None:
    s = settings("notifications")
    default = NotificationsConfig.from_env(s, {})
    assert default.smtp is None and default.sender == "shop <no-reply@shop.keelson.local>"
    config = NotificationsConfig.from_env(s, {"KEELSON_SMTP_HOST": "mail", "KEELSON_SMTP_PORT": "2525"})
    assert config.smtp == SmtpConfig("mail", 2525)
    with pytest.raises(SettingsError):
        NotificationsConfig.from_env(s, {"KEELSON_SMTP_HOST": "mail", "KEELSON_SMTP_STARTTLS": "maybe"})


def test_outgoing_is_plain_data() -> None:
    rendered = Renderer().render("push", "order_paid", context())
    assert Outgoing(uuid.uuid4(), "u-1", rendered).trace_id is None


async def test_a_name_with_line_breaks_cannot_inject_headers_or_fail_the_email() -> None:
    """Registration refuses such names now; older ones (and any template value) must still make a
    valid one-line subject, not an event in the DLQ or a forged header."""
    from keelson_services.contracts.users import RegisterRequest

    n, _, senders = notifier()
    await n.handle(event("user.registered", email="ada@example.com", name="Ada\r\nBcc: eve@example.com\u0085x"))
    (sent,) = senders["email"].sent
    mail = SmtpSender(SmtpConfig("smtp.invalid"), sender="shop <no-reply@shop>").message(sent)
    assert mail["Bcc"] is None and "\n" not in str(mail["Subject"]) and "\r" not in str(mail["Subject"])
    assert "Ada Bcc: eve@example.com x" in str(mail["Subject"])
    assert b"\r\nBcc:" not in mail.as_bytes()
    for bad in ("Ada\nLovelace", "Ada\tL", "Ada\u0085", "Ada\u2028"):
        with pytest.raises(ValueError, match="name"):
            RegisterRequest(email="ada@example.com", password="correct horse", name=bad)
    assert RegisterRequest(email="ada@example.com", password="correct horse", name="Ada Lovelace-Byron")


def test_locale_fallback_chain() -> None:
    assert locales("de-AT") == ["de-AT", "de", "en"]
    assert locales("de_at") == ["de-AT", "de", "en"]  # as some clients spell it
    assert locales("zh-Hant-TW") == ["zh-Hant-TW", "zh-Hant", "zh", "en"]
    assert locales("en-GB") == ["en-GB", "en"]
    assert locales(None) == locales("") == locales("not a locale!") == ["en"]


def test_subjects_and_titles_are_one_line_whatever_the_data_says() -> None:
    renderer = Renderer()
    source = TemplateSource("Hello {{ recipient.name }}", "Hi {{ recipient.name }}", "<p>{{ recipient.name }}</p>")
    hostile = context()
    hostile["recipient"]["name"] = "Ada\r\nBcc: eve@example.com\n<b>"
    email = renderer.render_source("email", "t", source, hostile)
    assert email.subject == "Hello Ada Bcc: eve@example.com <b>"
    assert email.html == "<p>Ada\r\nBcc: eve@example.com\n&lt;b&gt;</p>"  # HTML escaped, the body as it is
    push = renderer.render_source("push", "t", TemplateSource("{{ recipient.name }}", "x"), hostile)
    assert push.subject is not None and "\n" not in push.subject and "\r" not in push.subject


def test_templates_run_in_a_sandbox_and_bad_ones_are_refused() -> None:
    renderer = Renderer()
    escape = TemplateSource(None, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        renderer.render_source("sms", "t", escape, {})
    mutate = TemplateSource(None, "{{ data.update({'x': 1}) }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        renderer.render_source("sms", "t", mutate, {"data": {}})
    for channel, source, problem in [
        ("email", TemplateSource("Hi", "{% if %}"), "body: line 1"),
        ("email", TemplateSource(None, "x"), "subject: a email template needs one"),
        ("sms", TemplateSource("S", "x"), "subject: SMS templates have none"),
        ("push", TemplateSource("T", "x", "<p>"), "html: only email"),
        ("sms", TemplateSource(None, "  "), "body: must not be empty"),
        ("email", TemplateSource("{{ x", "x"), "subject: line 1"),
    ]:
        with pytest.raises(TemplateInvalidError, match=problem):
            renderer.validate(channel, source)  # type: ignore[arg-type]
    renderer.validate("email", renderer.source("email", "order_paid"))


def test_every_file_template_is_a_seed() -> None:
    files = set(Renderer().files())
    assert {("email", "welcome"), ("sms", "phone_verification"), ("push", "order_paid")} <= files
    assert all(Renderer().has(c, n) for c, n in files) and not any(n.endswith("subject") for _, n in files)


def test_phone_numbers_must_be_e164() -> None:
    assert PhoneRequest(phone="+4915112345678").phone == "+4915112345678"
    assert PhoneRequest.model_json_schema()["properties"]["phone"]["pattern"] == r"^\+[1-9]\d{6,14}$"
    for bad in ("015112345678", "+0151123456", "+4915112345678901", "+49abc", "", "+49 151 1234", "+4915112345678\n"):
        with pytest.raises(ValueError, match=r"E\.164"):
            PhoneRequest(phone=bad)
