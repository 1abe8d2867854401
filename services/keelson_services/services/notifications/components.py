"""Everything the notifications service's routes and consumer work with, built once per app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx

from keelson_services.db import Database
from keelson_services.events import ConsumerRunner
from keelson_services.http.client import ServiceClient
from keelson_services.messaging import RetryingConsumer
from keelson_services.services.notifications.config import NotificationsConfig
from keelson_services.services.notifications.contacts import Contacts
from keelson_services.services.notifications.handlers import Notifier, handlers
from keelson_services.services.notifications.rendering import Channel, Renderer
from keelson_services.services.notifications.repository import NotificationRepository
from keelson_services.services.notifications.senders import (
    RecordingSender,
    Sender,
    SmsSender,
    SmtpSender,
    WebPushSender,
)
from keelson_services.services.notifications.template_store import TemplateStore
from keelson_services.services.notifications.webpush import Vapid
from keelson_services.settings import Settings

log = logging.getLogger("keelson.notifications")


@dataclass(frozen=True)
class NotificationsComponents:
    config: NotificationsConfig
    db: Database
    notifications: NotificationRepository
    contacts: Contacts
    templates: TemplateStore
    renderer: Renderer
    senders: Mapping[Channel, Sender]
    notifier: Notifier
    consumer: ConsumerRunner | None
    client: ServiceClient  # to the SMS provider and the push services
    vapid: Vapid | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        config: NotificationsConfig,
        *,
        senders: Mapping[Channel, Sender] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> NotificationsComponents:
        """`senders`: adapters to use instead of the configured ones (tests); `transport`: the
        HTTP client's to the providers (tests)."""
        db = Database(settings.require_database(), application_name="notifications")
        repo = NotificationRepository(db, lease=timedelta(seconds=config.send_lease_seconds))
        contacts = Contacts(
            db,
            code_ttl=timedelta(seconds=config.phone_code_ttl_seconds),
            attempts=config.phone_code_attempts,
            interval=timedelta(seconds=config.phone_code_interval_seconds),
        )
        # The providers are no services of the platform: no call tokens, no service URLs; the
        # platform's timeout, breaker and retry schedule all the same.
        client = ServiceClient.from_settings(settings, base_urls={}, call_tokens=None, transport=transport)
        chosen: dict[Channel, Sender] = {}
        if config.smtp is None:
            log.warning("KEELSON_SMTP_HOST is not set: emails are recorded, not sent")
        chosen["email"] = SmtpSender(config.smtp, sender=config.sender) if config.smtp else RecordingSender("email")
        if config.sms is None:
            log.warning("KEELSON_SMS_BASE_URL is not set: SMS are recorded, not sent")
        chosen["sms"] = SmsSender(config.sms, client) if config.sms else RecordingSender("sms")
        vapid = Vapid.from_pem(config.push.private_key_pem, subject=config.push.subject) if config.push else None
        if vapid is None:
            log.warning("KEELSON_VAPID_PRIVATE_KEY is not set: pushes are recorded, not sent")
        chosen["push"] = WebPushSender(vapid, client, contacts) if vapid else RecordingSender("push")
        chosen.update(senders or {})
        renderer = Renderer()
        templates = TemplateStore(db)
        notifier = Notifier(repo, renderer, chosen, platform=settings.platform or "Keelson", templates=templates)
        consumer = None
        if settings.kafka_bootstrap and settings.subscribes:
            by_event = handlers(notifier)
            consumer = ConsumerRunner(
                lambda: RetryingConsumer.from_settings(
                    settings, {topic: by_event[".".join(topic.split(".")[-2:])] for topic in settings.subscribes}
                ),
                name=settings.service,
            )
        return cls(
            config=config,
            db=db,
            notifications=repo,
            contacts=contacts,
            templates=templates,
            renderer=renderer,
            senders=chosen,
            notifier=notifier,
            consumer=consumer,
            client=client,
            vapid=vapid,
        )

    async def seed_templates(self) -> None:
        seeded = await self.templates.seed(self.renderer)
        if seeded:
            log.info("%d templates seeded from the package's files", seeded)
