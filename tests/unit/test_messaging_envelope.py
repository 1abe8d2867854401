import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from keelson_services.messaging.envelope import Envelope, MalformedEvent, format_time, new_envelope

MOMENT = datetime(2026, 5, 9, 7, 30, 0, 123000, tzinfo=UTC)


def _doc(**changes: object) -> bytes:
    doc: dict[str, object] = {
        "id": "e-1",
        "type": "ecommerce.order.created",
        "time": "2026-05-09T07:30:00.123Z",
        "source": "orders",
        "schemaVersion": 1,
        "data": {"orderId": "o-1"},
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_round_trip() -> None:
    event = new_envelope("ecommerce.order.created", {"orderId": "o-1"}, source="orders", time=MOMENT)
    assert Envelope.from_json(event.to_json()) == event
    assert json.loads(event.to_json()) == {
        "id": event.id,
        "type": "ecommerce.order.created",
        "time": "2026-05-09T07:30:00.123Z",
        "source": "orders",
        "schemaVersion": 1,
        "data": {"orderId": "o-1"},
    }


def test_ids_are_unique_unless_given() -> None:
    a = new_envelope("t.o.c", {}, source="s", time=MOMENT)
    b = new_envelope("t.o.c", {}, source="s", time=MOMENT)
    assert a.id != b.id and len(a.id) == 36
    assert new_envelope("t.o.c", {}, source="s", time=MOMENT, event_id="mine").id == "mine"


def test_times_are_written_in_utc() -> None:
    assert format_time(MOMENT.astimezone(timezone(timedelta(hours=2)))) == "2026-05-09T07:30:00.123Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 5, 9))


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert Envelope.from_json(_doc(subject="later")).id == "e-1"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "message has no value"),
        (b"{not json", "message is not JSON"),
        (b"\xff\xfe", "message is not JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (_doc(id=...), "'id' must be a non-empty string, got nothing"),
        (_doc(id=""), "'id' must be a non-empty string"),
        (_doc(type=7), "'type' must be a non-empty string, got int 7"),
        (_doc(source=None), "'source' must be a non-empty string"),
        (_doc(time="yesterday"), "'time' is not an ISO 8601 time: 'yesterday'"),
        (_doc(time="2026-05-09T07:30:00"), "'time' has no timezone"),
        (_doc(time=1715000000), "'time' must be an ISO 8601 string"),
        (_doc(schemaVersion=0), "'schemaVersion' must be a positive integer, got 0"),
        (_doc(schemaVersion="1"), "'schemaVersion' must be a positive integer"),
        (_doc(schemaVersion=True), "'schemaVersion' must be a positive integer"),
        (_doc(data=[1]), "'data' must be a JSON object, got list"),
        (_doc(data=...), "'data' must be a JSON object, got nothing"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(raw: bytes | None, message: str) -> None:
    with pytest.raises(MalformedEvent) as refused:
        Envelope.from_json(raw)
    assert message in str(refused.value)


def test_malformed_is_a_value_error() -> None:
    assert issubclass(MalformedEvent, ValueError)
