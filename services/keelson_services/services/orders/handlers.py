"""Orders' subscriptions: `payment.completed` and `payment.failed` settle the order they name;
`user.deleted` erases what ties the account's orders to the person (`OrderRepository.erase_customer`).

Usually the synchronous answer settled it already and this changes nothing; it matters when that
answer was lost (a timeout after payments charged, a crash of this service mid-request). Handled
events are recorded by id, so a redelivery is skipped; settling is idempotent besides, so a crash
between settling and recording is harmless too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from uuid import UUID

from keelson_services.events import traced
from keelson_services.messaging import Envelope, Handler, PermanentError
from keelson_services.services.orders.flows import OrderFlows, Verdict
from keelson_services.services.orders.repository import OrderRepository

log = logging.getLogger("keelson.orders.events")


def verdict_of(event: Envelope) -> tuple[UUID, Verdict]:
    data = event.data
    try:
        return UUID(str(data["order_id"])), Verdict(
            payment_id=UUID(str(data["payment_id"])),
            succeeded=event.type.endswith(".payment.completed"),
            amount_cents=int(data["amount_cents"]),
            currency=str(data["currency"]),
            failure_code=data.get("failure_code"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise PermanentError(f"{event.type} {event.id} lacks a valid {exc}") from None


def handlers(flows: OrderFlows, orders: OrderRepository) -> Mapping[str, Handler]:
    async def on_payment(event: Envelope) -> None:
        if await orders.seen(event.id):
            return
        order_id, verdict = verdict_of(event)
        try:
            await flows.settle(order_id, verdict, cause=f"{event.type} {event.id}")
        except LookupError:
            log.warning("%s %s names no order of ours (%s); ignored", event.type, event.id, order_id)
        await orders.mark_seen(event.id, event.type)

    async def on_user_deleted(event: Envelope) -> None:
        user_id = event.data.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise PermanentError(f"{event.type} {event.id} names no user_id")
        # No `seen` check: erasing again is harmless, and a replayed event must erase orders
        # placed in the moment before the account's tokens stopped working.
        erased = await orders.erase_customer(user_id)
        log.info("%s %s: %d orders of the account erased", event.type, event.id, erased)
        await orders.mark_seen(event.id, event.type)

    handler = traced(on_payment)
    return {"payment.completed": handler, "payment.failed": handler, "user.deleted": traced(on_user_deleted)}
