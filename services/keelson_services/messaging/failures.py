"""What happens to a message whose handling failed, and when a retried message is due. Pure: the
consumer supplies the record's coordinates, the error and the time, so tests need no broker and
no waiting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from keelson.topics import Subscription
from keelson_services.messaging import headers
from keelson_services.messaging.schedule import next_topic

DeadReason = Literal["exhausted", "malformed", "permanent"]


@dataclass(frozen=True)
class Forward:
    topic: str
    headers: headers.Headers
    delay: int | None  # seconds the message waits on a retry topic; None for the DLQ
    dead_reason: DeadReason | None  # why it goes to the DLQ; None for a retry topic
    error: str  # as in the `keelson-error` header


def on_failure(
    sub: Subscription,
    *,
    retries: int,
    topic: str,
    partition: int,
    offset: int,
    record_headers: Sequence[tuple[str, bytes]] | None,
    error: BaseException,
    now: float,
    give_up: DeadReason | None = None,
) -> Forward:
    """Where a message read from `topic` (after `retries` retries) goes when handling it failed
    with `error` at `now`: the next retry topic, or the DLQ when the retries are used up or
    `give_up` says no retry can help."""
    target, delay = (sub.dlq, None) if give_up else next_topic(sub, retries)
    # On the main topic the message is where it was first read (even a replayed one: a replay
    # carries none of the headers below).
    origin = (
        headers.Origin(topic, partition, offset)
        if not retries
        else headers.Origin.of(topic, partition, offset, record_headers)
    )
    described = headers.describe_error(error)
    forwarded = headers.forwarded(
        record_headers,
        origin=origin,
        attempts=retries + 1,
        error=described,
        not_before_ms=None if delay is None else round((now + delay) * 1000),
    )
    reason: DeadReason | None = (give_up or "exhausted") if delay is None else None
    return Forward(target, forwarded, delay, reason, described)


def due_at(record_headers: Sequence[tuple[str, bytes]] | None, *, timestamp_ms: int, delay: int) -> float:
    """When a message on a retry topic may be handled: its `keelson-not-before`, or, for a
    message some other client put there, its write time plus the topic's delay."""
    due = headers.not_before(record_headers)
    return due if due is not None else timestamp_ms / 1000 + delay
