"""Resuming orders left pending: the background half of "no order lost".

An order is created, then paid in the same request. When that request gets no verdict (orders
died mid-request, payments died mid-charge, payments was unreachable), the order stays pending
and its 503/504 says a retry with the same Idempotency-Key resumes it. A client that never
retries would leave it pending for good, possibly with the customer's card charged at the
provider and no `payment.completed` ever published. So every replica, every
`KEELSON_ORDERS_RESUME_INTERVAL_SECONDS` (with jitter), resumes the pending orders untouched for
`KEELSON_ORDERS_RESUME_AFTER_SECONDS`, which outlasts orders' idempotency lease, so the request
that created an order is certainly over. Resuming is the same charge under the same key
(`OrderFlows.resume`): payments replays a finished charge, finishes one a crash interrupted
(asking its provider by the same key) and answers 409 while one is under way, so replicas
resuming the same order at once, or a late client retry, charge nothing twice.

A resume that gets no verdict either (payments still down, its breaker open) is logged, never
raised, and that order's next attempt is put off (one interval, doubling per failure, at most an
hour): rounds take the due orders least recently tried first, so orders that fail for good never
hold the batch and starve newer ones.
"""

from __future__ import annotations

import logging

from keelson_services.errors import ApiError
from keelson_services.periodic import Periodic
from keelson_services.services.orders.flows import OrderFlows
from keelson_services.services.orders.repository import OrderRepository

log = logging.getLogger("keelson.orders.resumer")
BATCH = 50
MAX_BACKOFF_SECONDS = 3600.0


class PendingOrderResumer:
    def __init__(
        self, flows: OrderFlows, orders: OrderRepository, *, after_seconds: float, interval_seconds: float
    ) -> None:
        self.flows = flows
        self.orders = orders
        self.after_seconds = after_seconds
        self.interval_seconds = interval_seconds
        self._job = Periodic("orders-resumer", interval_seconds, self.resume_stalled, log)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def resume_stalled(self) -> int:
        """One round: resume the stalled orders; how many were settled (paid or failed)."""
        settled = 0
        for order_id in await self.orders.stalled(older_than_seconds=self.after_seconds, limit=BATCH):
            try:
                order = await self.flows.resume(order_id)
            except ApiError as exc:
                log.warning("order %s still pending: %s", order_id, exc.detail, extra={"order_id": str(order_id)})
                await self.orders.resume_failed(
                    order_id, first_delay_seconds=self.interval_seconds, max_delay_seconds=MAX_BACKOFF_SECONDS
                )
                continue
            if order is not None and order.status != "pending":
                settled += 1
                log.info("order %s resumed: %s", order_id, order.status, extra={"order_id": str(order_id)})
        return settled
