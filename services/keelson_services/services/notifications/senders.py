"""Channel adapters: email over SMTP, and fakes for SMS and push (and for email when no SMTP
server is configured) that record what they would have sent.

SMTP goes through the standard library's `smtplib` in a worker thread, at most `concurrency`
conversations at a time. Each email carries a `Message-ID` derived from its notification's id,
the same on every attempt, so the rare re-send after a crash between the server's acceptance and
our record of it is recognisably the same message; and the trace id in `X-Trace-Id`.
"""

from __future__ import annotations

import asyncio
import email.utils
import smtplib
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from keelson_services.services.notifications.config import SmtpConfig
from keelson_services.services.notifications.rendering import Channel, Rendered


def header_text(value: str) -> str:
    """`value` as one header line: every run of control characters or line breaks (which the
    mail library refuses in a header, and which would inject headers where it did not) becomes
    one space. Names are refused with them at registration; this covers older data and
    templates."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


@dataclass(frozen=True)
class Outgoing:
    notification_id: uuid.UUID
    recipient: str  # an email address, a phone number, a user id (push)
    rendered: Rendered
    trace_id: str | None = None


class Sender(Protocol):
    channel: Channel

    async def send(self, message: Outgoing) -> str:
        """Deliver `message`; returns the provider's id for it. Raises when it was not accepted."""
        ...


@dataclass
class RecordingSender:
    """A fake adapter: keeps what it was asked to send (and can be told to fail)."""

    channel: Channel
    sent: list[Outgoing] = field(default_factory=list)
    fail_with: Exception | None = None

    async def send(self, message: Outgoing) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)
        return f"{self.channel}-{message.notification_id}"


class SmtpSender:
    channel: Channel = "email"

    def __init__(self, config: SmtpConfig, *, sender: str, concurrency: int = 4) -> None:
        self.config = config
        self.sender = sender
        self._slots = asyncio.Semaphore(concurrency)

    def message(self, message: Outgoing) -> EmailMessage:
        rendered = message.rendered
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = header_text(rendered.subject or "")
        mail["Date"] = email.utils.formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.notification_id}@keelson.notifications>"
        if message.trace_id:
            mail["X-Trace-Id"] = message.trace_id
        mail.set_content(rendered.body)
        if rendered.html is not None:
            mail.add_alternative(rendered.html, subtype="html")
        return mail

    async def send(self, message: Outgoing) -> str:
        mail = self.message(message)
        async with self._slots:
            await asyncio.to_thread(self._deliver, mail)
        return str(mail["Message-ID"])

    def _deliver(self, mail: EmailMessage) -> None:
        c = self.config
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds) as smtp:
            if c.starttls:
                smtp.starttls()
            if c.username:
                smtp.login(c.username, c.password or "")
            smtp.send_message(mail)
