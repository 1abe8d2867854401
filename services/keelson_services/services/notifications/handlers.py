"""The consumer's handlers: each event becomes one notification per channel of its catalogue
entry (`catalogue.py`), rendered, sent through the channel's adapter, and recorded.

Idempotent by event id: a notification is claimed in the database under the unique (event id,
channel) before it is sent, so a redelivered, retried or replayed event never sends one twice;
a retry sends only the channels not sent yet. The one exception is a crash after the channel
accepted a message and before it was recorded sent: no sender can know whether it went out, so
the redelivered event sends it again, under the same notification id and so the same email
Message-ID, by which the receiving side recognises the repeat (at least once, never lost).
`user.registered` also teaches the service the user's address and locale, and `user.deleted`
erases the user (`repository.erase`). Templates are the database's (`template_store.py`), in the
first locale of the user's fallback chain that has the template. Messages that are not
transactional (`catalogue.category`) go only on the channels the user did not turn off. Failures go the Kafka library's
way: a send that fails, or a recipient not known yet (their `user.registered` may still be on its
way), raises and is retried on the subscription's schedule, then dead-lettered; a template that
does not fit its event is a `PermanentError` (to the DLQ at once: fix the template, then
`keelson dlq replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jinja2

from keelson_services.events import traced
from keelson_services.events.outbox import SECRET_FIELDS
from keelson_services.messaging import Envelope, Handler, PermanentError
from keelson_services.messaging.headers import describe_error
from keelson_services.observability import tracing
from keelson_services.services.notifications.catalogue import CATALOGUE, category, routes
from keelson_services.services.notifications.rendering import Channel, Renderer
from keelson_services.services.notifications.repository import NotificationRepository
from keelson_services.services.notifications.senders import Outgoing, Sender
from keelson_services.services.notifications.template_store import FileTemplates, TemplateLookup, locales

log = logging.getLogger("keelson.notifications")


class RecipientNotKnownError(RuntimeError):
    """No address for the user yet: retried, since their `user.registered` may come later."""


class SendFailedError(RuntimeError):
    pass


class Notifier:
    def __init__(
        self,
        repo: NotificationRepository,
        renderer: Renderer,
        senders: Mapping[Channel, Sender],
        *,
        platform: str,
        templates: TemplateLookup | None = None,
    ) -> None:
        """`templates`: where templates come from; the package's files unless given."""
        self.repo = repo
        self.renderer = renderer
        self.senders = senders
        self.platform = platform
        self.templates = templates or FileTemplates(renderer)

    async def handle(self, event: Envelope) -> None:
        data = event.data
        user_id = data.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise PermanentError(f"{event.type} {event.id} names no user_id")
        if event.type.endswith(".user.deleted"):
            await self.repo.erase(user_id)
            log.info("%s %s: the user's contacts, preferences and notification contents erased", event.type, event.id)
            return
        if event.type.endswith(".user.registered"):
            if await self.repo.erased(user_id):
                # A replay of an erased user's registration must not bring their address back.
                log.info("%s %s: its user was erased; not remembered", event.type, event.id)
                return
            await self.repo.remember(
                user_id,
                email=_text(data.get("email")),
                name=_text(data.get("name")),
                phone=_text(data.get("phone")),
                locale=_text(data.get("locale")),
            )
        wanted = routes(event.type)
        if not wanted:
            return
        recipient = await self.repo.recipient(user_id)
        if recipient is None:
            if await self.repo.erased(user_id):
                log.info("%s %s: its user was erased; nothing sent", event.type, event.id)
                return
            raise RecipientNotKnownError(f"no address known for user {user_id} (no user.registered seen yet)")
        kind = category(event.type)
        chain = locales(recipient.locale)
        context = {
            "data": data,
            "recipient": recipient.context(),
            "event": {"id": event.id, "type": event.type},
            "platform": self.platform,
        }
        trace = tracing.current()
        failures: list[str] = []
        for channel, template in wanted:
            address = recipient.address(channel)
            if not address or channel not in self.senders:
                continue
            if kind != "transactional" and not await self.repo.allows(user_id, channel, kind):
                log.info("%s %s: %s turned off by the user (%s)", event.type, event.id, channel, kind)
                continue
            if await self.repo.status(event.id, channel) == "sent":
                continue
            found = await self.templates.find(channel, template, chain)
            if found is None:
                raise PermanentError(f"template {channel}/{template}: none in {', '.join(chain)}")
            try:
                rendered = recorded = self.renderer.render_source(channel, template, found.source, context)
                if secrets := {name: "[redacted]" for name in SECRET_FIELDS if name in data}:
                    # A one-time link's token is sent, never stored: the record (and the history
                    # API) shows the message with the token blanked out.
                    redacted = {**context, "data": {**data, **secrets}}
                    recorded = self.renderer.render_source(channel, template, found.source, redacted)
            except (jinja2.TemplateError, ValueError, TypeError) as exc:
                raise PermanentError(
                    f"template {channel}/{template} v{found.version} ({found.locale}): {describe_error(exc)}"
                ) from exc
            # Claim, send and record under the notification's lock (see `repository.sending`).
            async with self.repo.sending(event.id, channel) as mine:
                if not mine:
                    failures.append(f"{channel}: being sent by another consumer")
                    continue
                notification = await self.repo.claim(
                    event_id=event.id,
                    event_type=event.type,
                    channel=channel,
                    template=template,
                    user_id=user_id,
                    recipient=address,
                    subject=recorded.subject,
                    body=recorded.body,
                    trace_id=trace.trace_id if trace else None,
                    locale=found.locale,
                    template_version=found.version,
                )
                if notification is None:
                    continue  # sent meanwhile
                try:
                    provider_id = await self.senders[channel].send(
                        Outgoing(notification, address, rendered, trace.trace_id if trace else None)
                    )
                except Exception as exc:
                    await self.repo.failed(notification, describe_error(exc))
                    log.warning("%s %s: %s not sent: %s", event.type, event.id, channel, describe_error(exc))
                    failures.append(f"{channel}: {describe_error(exc)}")
                    continue
                await self.repo.sent(notification, provider_id)
            log.info("%s %s: %s sent", event.type, event.id, channel, extra={"template": template})
        if failures:
            raise SendFailedError("; ".join(failures))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def handlers(notifier: Notifier) -> dict[str, Handler]:
    """A handler for each event of the catalogue (the subscriptions name which are consumed)."""
    handle = traced(notifier.handle)
    return dict.fromkeys(CATALOGUE, handle)
