"""Everything the notifications service's routes and consumer work with, built once per app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from keelson_services.db import Database
from keelson_services.events import ConsumerRunner
from keelson_services.messaging import RetryingConsumer
from keelson_services.services.notifications.config import NotificationsConfig
from keelson_services.services.notifications.handlers import Notifier, handlers
from keelson_services.services.notifications.rendering import Channel, Renderer
from keelson_services.services.notifications.repository import NotificationRepository
from keelson_services.services.notifications.senders import RecordingSender, Sender, SmtpSender
from keelson_services.settings import Settings

log = logging.getLogger("keelson.notifications")


@dataclass(frozen=True)
class NotificationsComponents:
    config: NotificationsConfig
    db: Database
    notifications: NotificationRepository
    senders: Mapping[Channel, Sender]
    notifier: Notifier
    consumer: ConsumerRunner | None

    @classmethod
    def build(
        cls, settings: Settings, config: NotificationsConfig, *, senders: Mapping[Channel, Sender] | None = None
    ) -> NotificationsComponents:
        """`senders`: adapters to use instead of the configured ones (tests)."""
        db = Database(settings.require_database(), application_name="notifications")
        repo = NotificationRepository(db, lease=timedelta(seconds=config.send_lease_seconds))
        if config.smtp is None:
            log.warning("KEELSON_SMTP_HOST is not set: emails are recorded, not sent")
        email: Sender = SmtpSender(config.smtp, sender=config.sender) if config.smtp else RecordingSender("email")
        chosen: dict[Channel, Sender] = {"email": email, "sms": RecordingSender("sms"), "push": RecordingSender("push")}
        chosen.update(senders or {})
        notifier = Notifier(repo, Renderer(), chosen, platform=settings.platform or "Keelson")
        consumer = None
        if settings.kafka_bootstrap and settings.subscribes:
            by_event = handlers(notifier)
            consumer = ConsumerRunner(
                lambda: RetryingConsumer.from_settings(
                    settings, {topic: by_event[".".join(topic.split(".")[-2:])] for topic in settings.subscribes}
                ),
                name=settings.service,
            )
        return cls(config=config, db=db, notifications=repo, senders=chosen, notifier=notifier, consumer=consumer)
