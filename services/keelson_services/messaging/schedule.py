"""Where a failing message goes next, and when it may be handled there.

The topic names and the subscription shape are the operator's (`keelson.topics`), so the library
can only ever use the retry topics and DLQs that the operator created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keelson.topics import Subscription, dlq_topic, retry_topic


def retry_delays(backoff_seconds: Sequence[int], max_retries: int) -> tuple[int, ...]:
    """One delay per retry; the schedule repeats its last delay when retries outnumber delays."""
    if max_retries and not backoff_seconds:
        raise ValueError("a retry schedule needs at least one delay")
    return tuple(backoff_seconds[min(i, len(backoff_seconds) - 1)] for i in range(max_retries))


def subscription(topic: str, service: str, *, backoff_seconds: Sequence[int], max_retries: int) -> Subscription:
    return Subscription(
        topic=topic,
        service=service,
        retry_topics=tuple(retry_topic(topic, service, n + 1) for n in range(max_retries)),
        delays=retry_delays(backoff_seconds, max_retries),
        dlq=dlq_topic(topic, service),
    )


@dataclass(frozen=True)
class Hop:
    """The place of a message in its subscription's retry path."""

    topic: str
    retries: int  # retries already behind a message read here: 0 on the main topic, n on retry-n
    delay: int  # seconds a message waits here before it is handled (0 on the main topic)


def hops(sub: Subscription) -> list[Hop]:
    """The main topic, then each retry topic in order."""
    return [Hop(sub.topic, 0, 0)] + [
        Hop(topic, n + 1, delay) for n, (topic, delay) in enumerate(zip(sub.retry_topics, sub.delays, strict=True))
    ]


def next_topic(sub: Subscription, retries: int) -> tuple[str, int | None]:
    """Where a message that failed after `retries` retries goes: the next retry topic with its
    delay, or the DLQ (delay None) once the retries are used up."""
    if retries < len(sub.retry_topics):
        return sub.retry_topics[retries], sub.delays[retries]
    return sub.dlq, None


def parse_dlq(name: str) -> tuple[str, str]:
    """(main topic, service) of a DLQ named `<domain>.<entity>.<action>.<service>.dlq`."""
    parts = name.split(".")
    if len(parts) != 5 or parts[-1] != "dlq" or not all(parts):
        raise ValueError(f"{name!r} is not a DLQ name (<domain>.<entity>.<action>.<service>.dlq)")
    return ".".join(parts[:3]), parts[3]
