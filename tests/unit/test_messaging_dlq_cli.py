import pytest

from keelson.cli import build_parser, main
from keelson_services.messaging.dlq import DeadLetter
from keelson_services.messaging.dlq_cli import UsageError, parse_offsets
from keelson_services.messaging.schedule import parse_dlq

DLQ = "ecommerce.order.created.notifications.dlq"


def test_dlq_names_give_topic_and_service() -> None:
    assert parse_dlq(DLQ) == ("ecommerce.order.created", "notifications")
    for bad in ("ecommerce.order.created", "ecommerce.order.created.notifications.retry-1", "a..c.d.dlq"):
        with pytest.raises(ValueError, match="not a DLQ name"):
            parse_dlq(bad)


def test_offsets() -> None:
    assert parse_offsets(["0:17", "2:3"], partitions=3) == {(0, 17), (2, 3)}
    assert parse_offsets(["17"], partitions=1) == {(0, 17)}
    with pytest.raises(UsageError, match="3 partitions: give PARTITION:OFFSET"):
        parse_offsets(["17"], partitions=3)
    with pytest.raises(UsageError, match="bad offset 'x:1'"):
        parse_offsets(["x:1"], partitions=3)


def test_the_commands_are_part_of_the_keelson_cli() -> None:
    args = build_parser().parse_args(["dlq", "replay", DLQ, "--all", "--dry-run", "--bootstrap-server", "b:9092"])
    assert (args.dlq, args.all, args.dry_run, args.bootstrap_server) == (DLQ, True, True, "b:9092")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dlq", "replay", DLQ])  # --offset or --all is required


def test_without_brokers_the_cli_says_how_to_name_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEELSON_KAFKA_BOOTSTRAP", raising=False)
    assert main(["dlq", "list"]) == 2
    assert "--bootstrap-server or set KEELSON_KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_a_bad_dlq_name_is_refused_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "show", "orders", "--bootstrap-server", "127.0.0.1:1"]) == 1
    assert "not a DLQ name" in capsys.readouterr().err


def test_a_dead_letter_summarises_where_and_why() -> None:
    letter = DeadLetter(
        dlq=DLQ,
        partition=1,
        offset=4,
        timestamp_ms=0,
        key=b"o-1",
        value=b'{"id": "e-1", "type": "ecommerce.order.created"}',
        headers=(
            ("keelson-original-partition", b"1"),
            ("keelson-original-offset", b"88"),
            ("keelson-attempts", b"4"),
            ("keelson-error", b"RuntimeError: boom"),
            ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ),
    )
    summary = letter.summary()
    assert letter.original_topic == "ecommerce.order.created" and letter.service == "notifications"
    assert (summary["event_id"], summary["original_offset"], summary["attempts"]) == ("e-1", 88, 4)
    assert summary["error"] == "RuntimeError: boom" and summary["key"] == "o-1"
