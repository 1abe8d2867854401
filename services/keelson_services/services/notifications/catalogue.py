"""Which event is announced on which channels, with which template. An event's recipient is the
user its data names (`user_id`); a channel for which the recipient has no address (an SMS without
a phone number) is left out.
"""

from __future__ import annotations

from typing import Literal

from keelson_services.services.notifications.rendering import Channel

Category = Literal["transactional", "marketing"]
# Transactional messages (payments, an order's states, account security) are always sent; the
# others honour the user's preferences (`GET/PUT /api/v1/notifications/preferences`).
CATEGORIES: tuple[Category, ...] = ("transactional", "marketing")

CATALOGUE: dict[str, tuple[tuple[Channel, str], ...]] = {
    "user.registered": (("email", "welcome"),),
    # The links of docs/accounts.md: email only, whatever other addresses the user has.
    "user.verification-requested": (("email", "verify_email"),),
    "user.password-reset-requested": (("email", "password_reset"),),
    "user.deleted": (),  # erases what the service keeps about the user (`handlers.py`)
    "order.created": (("push", "order_received"),),
    "order.paid": (("email", "order_paid"), ("push", "order_paid"), ("sms", "order_paid")),
    "order.cancelled": (("email", "order_cancelled"), ("sms", "order_cancelled")),
    "order.shipped": (("email", "order_shipped"),),
    "order.delivered": (("email", "order_delivered"),),
    "payment.completed": (),  # order.paid says it to the customer
    "payment.failed": (("email", "payment_failed"), ("sms", "payment_failed"), ("push", "payment_failed")),
}


def routes(event: str) -> tuple[tuple[Channel, str], ...]:
    """The (channel, template) pairs of `event` (`entity.action`, or a full topic name)."""
    return CATALOGUE.get(".".join(event.split(".")[-2:]), ())


# The events whose messages a user may turn off; every other event of the catalogue is transactional.
OPTIONAL: dict[str, Category] = {"user.registered": "marketing"}


def category(event: str) -> Category:
    """The category of `event`'s messages (`entity.action`, or a full topic name)."""
    return OPTIONAL.get(".".join(event.split(".")[-2:]), "transactional")
