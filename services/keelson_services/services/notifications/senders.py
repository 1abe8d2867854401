"""Channel adapters: email over SMTP, SMS over a provider's HTTP API in Twilio's shape, push
over Web Push (RFC 8030, encrypted per RFC 8291, signed with VAPID), and a fake per channel,
used when the channel is not configured, that records what it would have sent.

SMS and push go through the platform's resilient HTTP client (`ServiceClient`): each provider
(the SMS API, each push service's origin) is a downstream with the platform's timeout, circuit
breaker and retry schedule. A send carries an `Idempotency-Key` (the notification's id) so that
the client may repeat it after a 502/503/504; anything else that is not an acceptance raises, and
the event is retried on its subscription's schedule (`handlers.py`).

SMTP goes through the standard library's `smtplib` in a worker thread, at most `concurrency`
conversations at a time. Each email carries a `Message-ID` derived from its notification's id,
the same on every attempt, so the rare re-send after a crash between the server's acceptance and
our record of it is recognisably the same message; and the trace id in `X-Trace-Id`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import smtplib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from keelson_services import identity
from keelson_services.http.client import ServiceClient
from keelson_services.services.notifications.config import SmsConfig, SmtpConfig
from keelson_services.services.notifications.rendering import Channel, Rendered, header_text
from keelson_services.services.notifications.webpush import Vapid, encrypt

log = logging.getLogger("keelson.notifications")
SMS_PROVIDER = "sms-provider"  # the SMS API's name as a downstream of the resilient client
PUSH_TTL_SECONDS = 24 * 3600  # how long a push service keeps a message for an offline device


class ProviderRefusedError(RuntimeError):
    """A provider answered, and not with an acceptance. The message names the status and the
    provider's own error code, never a credential."""


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


class SmsSender:
    """SMS through an HTTP API in the shape of Twilio's: `POST {base}/2010-04-01/Accounts/{sid}/
    Messages.json`, form-encoded `To`, `From`, `Body`, HTTP basic auth with the account SID and
    its token; 201 with the message's `sid`."""

    channel: Channel = "sms"

    def __init__(self, config: SmsConfig, client: ServiceClient) -> None:
        self.config = config
        self.client = client
        client.base_urls[SMS_PROVIDER] = config.base_url

    async def send(self, message: Outgoing) -> str:
        return await self.send_text(message.recipient, message.rendered.body, key=str(message.notification_id))

    async def send_text(self, to: str, body: str, *, key: str) -> str:
        """Send `body` to `to`; `key` makes repeats of the same send recognisable (idempotency)."""
        credentials = base64.b64encode(f"{self.config.account}:{self.config.token}".encode()).decode()
        headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Idempotency-Key": key,
            "I-Twilio-Idempotency-Token": key,
        }
        form = httpx.QueryParams({"To": to, "From": self.config.sender, "Body": body})
        path = f"/2010-04-01/Accounts/{self.config.account}/Messages.json"
        with identity.activated(None):  # the provider is no service of ours: no user headers
            response = await self.client.post(SMS_PROVIDER, path, content=str(form).encode(), headers=headers)
        if response.status_code not in (200, 201):
            raise ProviderRefusedError(f"SMS provider answered {response.status_code}{_provider_code(response)}")
        sid = _json(response).get("sid")
        return str(sid) if sid else f"sms-{key}"


@dataclass(frozen=True)
class Device:
    id: uuid.UUID
    endpoint: str
    p256dh: bytes
    auth: bytes


class Devices(Protocol):
    async def devices(self, user_id: str) -> Sequence[Device]: ...

    async def forget_device(self, device_id: uuid.UUID) -> None: ...


class WebPushSender:
    """Push to each of the user's devices: the rendered title and body as JSON, encrypted for the
    device (RFC 8291), posted to its push service's endpoint with a VAPID signature (RFC 8292).
    A 404 or 410 from the push service means the subscription is gone: the device is forgotten.
    The push counts as sent when at least one device took it."""

    channel: Channel = "push"

    def __init__(self, vapid: Vapid, client: ServiceClient, devices: Devices) -> None:
        self.vapid = vapid
        self.client = client
        self.devices = devices

    async def send(self, message: Outgoing) -> str:
        devices = await self.devices.devices(message.recipient)
        if not devices:
            raise ProviderRefusedError("no push device registered any more")
        payload = json.dumps(
            {
                "title": message.rendered.subject or "",
                "body": message.rendered.body,
                "notification_id": str(message.notification_id),
            }
        ).encode()
        accepted: list[str] = []
        failures: list[str] = []
        for device in devices:
            try:
                accepted.append(await self._push(device, payload, key=f"{message.notification_id}:{device.id}"))
            except ProviderRefusedError as exc:
                failures.append(f"device {device.id}: {exc}")
        if not accepted:
            raise ProviderRefusedError("; ".join(failures) or "no device took it")
        if failures:
            log.warning("push %s: some devices did not take it: %s", message.notification_id, "; ".join(failures))
        return accepted[0]

    async def _push(self, device: Device, payload: bytes, *, key: str) -> str:
        parts = urlsplit(device.endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        self.client.base_urls.setdefault(origin, origin)  # each push service is a downstream of its own
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Authorization": self.vapid.authorization(device.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(PUSH_TTL_SECONDS),
            "Urgency": "normal",
            "Idempotency-Key": key,
        }
        body = encrypt(payload, p256dh=device.p256dh, auth=device.auth)
        with identity.activated(None):
            response = await self.client.post(origin, path, content=body, headers=headers)
        if response.status_code in (404, 410):
            await self.devices.forget_device(device.id)
            raise ProviderRefusedError(f"subscription gone ({response.status_code}): device forgotten")
        if response.status_code not in (200, 201, 202):
            raise ProviderRefusedError(f"push service answered {response.status_code}")
        return response.headers.get("location") or f"push-{key}"


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _provider_code(response: httpx.Response) -> str:
    code = _json(response).get("code")
    return f" (provider code {code})" if isinstance(code, int | str) else ""
