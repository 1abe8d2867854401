"""Events inside a service, on top of `messaging`: a transactional outbox and its relay (publish
after the commit, never for a rolled-back change, never lost), and a consumer runner that keeps
a service's `RetryingConsumer` going beside its HTTP server."""

from keelson_services.events.consumers import ConsumerRunner, traced
from keelson_services.events.outbox import CHANNEL, Outbox, OutboxEvent, migrations
from keelson_services.events.relay import OutboxRelay

__all__ = ["CHANNEL", "ConsumerRunner", "Outbox", "OutboxEvent", "OutboxRelay", "migrations", "traced"]
