"""Which event is announced on which channels, with which template. An event's recipient is the
user its data names (`user_id`); a channel for which the recipient has no address (an SMS without
a phone number) is left out.
"""

from __future__ import annotations

from keelson_services.services.notifications.rendering import Channel

CATALOGUE: dict[str, tuple[tuple[Channel, str], ...]] = {
    "user.registered": (("email", "welcome"),),
    # The links of docs/accounts.md: email only, whatever other addresses the user has.
    "user.verification-requested": (("email", "verify_email"),),
    "user.password-reset-requested": (("email", "password_reset"),),
    "user.deleted": (),  # nothing to send; erasing the user's contact data and notifications is the handler's
    "order.created": (("push", "order_received"),),
    "order.paid": (("email", "order_paid"), ("push", "order_paid")),
    "order.cancelled": (("email", "order_cancelled"), ("sms", "order_cancelled")),
    "order.shipped": (("email", "order_shipped"),),
    "order.delivered": (("email", "order_delivered"),),
    "payment.completed": (),  # order.paid says it to the customer
    "payment.failed": (("email", "payment_failed"), ("sms", "payment_failed"), ("push", "payment_failed")),
}


def routes(event: str) -> tuple[tuple[Channel, str], ...]:
    """The (channel, template) pairs of `event` (`entity.action`, or a full topic name)."""
    return CATALOGUE.get(".".join(event.split(".")[-2:]), ())
