"""The headers Keelson puts on messages it moves between a subscription's topics.

A message leaving its main topic for a retry topic or the DLQ keeps its key, its value and all of
its own headers (among them `traceparent`, so the original trace context travels with it), and
gains:

| header                        | on            | value                                              |
| ---                           | ---           | ---                                                |
| `keelson-original-topic`      | retry and DLQ | the main topic it was first read from              |
| `keelson-original-partition`  | retry and DLQ | its partition there                                |
| `keelson-original-offset`     | retry and DLQ | its offset there                                   |
| `keelson-attempts`            | retry and DLQ | how many times a handler has tried it              |
| `keelson-error`               | retry and DLQ | the last failure, `ExceptionType: message`         |
| `keelson-not-before`          | retry         | epoch milliseconds before which it is not handled |
| `keelson-replay-for`          | replays       | the only subscriber that handles a replayed copy   |
| `keelson-replayed-from`       | replays       | `<dlq>/<partition>/<offset>` it was replayed from  |

All values are UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Headers = list[tuple[str, bytes]]

PREFIX = "keelson-"
ORIGINAL_TOPIC = "keelson-original-topic"
ORIGINAL_PARTITION = "keelson-original-partition"
ORIGINAL_OFFSET = "keelson-original-offset"
ATTEMPTS = "keelson-attempts"
ERROR = "keelson-error"
NOT_BEFORE = "keelson-not-before"
REPLAY_FOR = "keelson-replay-for"
REPLAYED_FROM = "keelson-replayed-from"

MAX_ERROR_BYTES = 2000


def get(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


def text(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    value = get(headers, name)
    return None if value is None else value.decode("utf-8", "replace")


def describe_error(error: BaseException) -> str:
    """`ExceptionType: message`, cut to a size that fits in a header."""
    described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    raw = described.encode()
    if len(raw) <= MAX_ERROR_BYTES:
        return described
    return raw[: MAX_ERROR_BYTES - 3].decode("utf-8", "ignore") + "..."


@dataclass(frozen=True)
class Origin:
    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, topic: str, partition: int, offset: int, headers: Sequence[tuple[str, bytes]] | None) -> Origin:
        """Where a message was first read: from its headers once it has been forwarded, else here."""
        original = text(headers, ORIGINAL_TOPIC)
        part, off = text(headers, ORIGINAL_PARTITION), text(headers, ORIGINAL_OFFSET)
        if original and part and off and part.isdigit() and off.isdigit():
            return cls(original, int(part), int(off))
        return cls(topic, partition, offset)


def forwarded(
    headers: Sequence[tuple[str, bytes]] | None,
    *,
    origin: Origin,
    attempts: int,
    error: str,
    not_before_ms: int | None,
) -> Headers:
    """The headers of a failed message sent on to a retry topic (`not_before_ms` set) or the DLQ."""
    kept = [(k, v) for k, v in headers or () if not k.startswith(PREFIX)]
    kept += [
        (ORIGINAL_TOPIC, origin.topic.encode()),
        (ORIGINAL_PARTITION, str(origin.partition).encode()),
        (ORIGINAL_OFFSET, str(origin.offset).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (ERROR, error.encode()),
    ]
    if not_before_ms is not None:
        kept.append((NOT_BEFORE, str(not_before_ms).encode()))
    return kept


def replayed(headers: Sequence[tuple[str, bytes]] | None, *, service: str, source: str) -> Headers:
    """The headers of a DLQ message re-driven to its original topic: its own headers (the trace
    context among them) without Keelson's bookkeeping, addressed to one subscriber only."""
    kept = [(k, v) for k, v in headers or () if not k.startswith(PREFIX)]
    return [*kept, (REPLAY_FOR, service.encode()), (REPLAYED_FROM, source.encode())]


def not_before(headers: Sequence[tuple[str, bytes]] | None) -> float | None:
    """The due time (epoch seconds) of a message on a retry topic, if it has a valid one."""
    value = text(headers, NOT_BEFORE)
    return int(value) / 1000 if value and value.isdigit() else None
