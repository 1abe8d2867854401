"""The event envelope: every message on a Keelson topic is one JSON object

    {"id": "...", "type": "ecommerce.order.created", "time": "2026-05-09T07:30:00.123Z",
     "source": "orders", "schemaVersion": 1, "data": {...}}

`id` identifies the event across redeliveries, retries and replays: handlers deduplicate on it.
`type` is the full topic name it was published to, `source` the publishing service, and
`schemaVersion` the version of `data`'s shape, so consumers can evolve with producers.

Parsing is strict about the fields above (a message that breaks them goes to the DLQ at once, no
retry can fix it) and ignores fields it does not know, so that a newer library can add one
without a rolling upgrade dead-lettering everything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple


class MalformedEvent(ValueError):
    """A message that is not a valid envelope."""


class Envelope(NamedTuple):
    """An event as handlers see it. A named tuple rather than a frozen dataclass: consumers build
    one per message, and this is several times cheaper to construct."""

    id: str
    type: str
    time: datetime
    source: str
    data: dict[str, Any]
    schema_version: int = 1

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "time": format_time(self.time),
                "source": self.source,
                "schemaVersion": self.schema_version,
                "data": self.data,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | None) -> Envelope:
        if raw is None:
            raise MalformedEvent("message has no value")
        try:
            # JSON between systems is UTF-8 (RFC 8259); decoding first spares json.loads its
            # guess at the encoding, a good part of its cost on small messages.
            doc = json.loads(raw.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedEvent(f"message is not JSON: {exc}") from None
        # The common case in as few steps as possible; anything unusual takes the slow path,
        # which says precisely what is wrong.
        try:
            event_id, event_type, source, when = doc["id"], doc["type"], doc["source"], doc["time"]
            version, data = doc["schemaVersion"], doc["data"]
            moment = datetime.fromisoformat(when)
        except (KeyError, TypeError, ValueError):
            raise _refusal(doc) from None
        if (
            type(event_id) is type(event_type) is type(source) is type(when) is str
            and event_id
            and event_type
            and source
            and type(version) is int
            and version >= 1
            and type(data) is dict
            and moment.tzinfo is not None
        ):
            return tuple.__new__(cls, (event_id, event_type, moment, source, data, version))  # = cls._make
        raise _refusal(doc)


def _refusal(doc: object) -> MalformedEvent:
    if not isinstance(doc, dict):
        return MalformedEvent(f"envelope must be a JSON object, got {type(doc).__name__}")
    for name in ("id", "type", "source"):
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            return MalformedEvent(f"envelope field {name!r} must be a non-empty string, got {_kind(value)}")
    version = doc.get("schemaVersion")
    if type(version) is not int or version < 1:
        return MalformedEvent(f"envelope field 'schemaVersion' must be a positive integer, got {version!r}")
    if not isinstance(doc.get("data"), dict):
        return MalformedEvent(f"envelope field 'data' must be a JSON object, got {_kind(doc.get('data'))}")
    try:
        parse_time(doc.get("time"))
    except MalformedEvent as exc:
        return exc
    return MalformedEvent("envelope is malformed")  # pragma: no cover - every case is named above


def new_envelope(
    event_type: str,
    data: Mapping[str, Any],
    *,
    source: str,
    time: datetime,
    event_id: str | None = None,
    schema_version: int = 1,
) -> Envelope:
    if schema_version < 1:
        raise ValueError("schema_version must be positive")
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=event_type,
        time=time,
        source=source,
        data=dict(data),
        schema_version=schema_version,
    )


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise MalformedEvent(f"envelope field 'time' must be an ISO 8601 string, got {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"envelope field 'time' is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise MalformedEvent(f"envelope field 'time' has no timezone: {value!r}")
    return moment


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
