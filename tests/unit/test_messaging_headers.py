from keelson_services.messaging import headers as h
from keelson_services.messaging.failures import on_failure
from keelson_services.messaging.schedule import subscription

TOPIC = "ecommerce.order.created"
TRACE = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOW = 1_800_000_000.25
SUB = subscription(TOPIC, "notifications", backoff_seconds=(1, 2, 4, 8), max_retries=3)


def _fail(retries: int, record_headers: list[tuple[str, bytes]], **kwargs: object) -> h.Headers:
    topic = TOPIC if retries == 0 else SUB.retry_topics[retries - 1]
    forward = on_failure(
        SUB,
        retries=retries,
        topic=topic,
        partition=2,
        offset=40 + retries,
        record_headers=record_headers,
        error=RuntimeError(f"failure {retries + 1}"),
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )
    return forward.headers


def test_a_first_failure_goes_to_retry_1_due_after_the_first_delay() -> None:
    forward = on_failure(
        SUB,
        retries=0,
        topic=TOPIC,
        partition=2,
        offset=40,
        record_headers=[("traceparent", TRACE), ("tracestate", b"k=v")],
        error=RuntimeError("db down"),
        now=NOW,
    )
    assert (forward.topic, forward.delay, forward.dead_reason) == (SUB.retry_topics[0], 1, None)
    assert forward.headers == [
        ("traceparent", TRACE),
        ("tracestate", b"k=v"),
        (h.ORIGINAL_TOPIC, TOPIC.encode()),
        (h.ORIGINAL_PARTITION, b"2"),
        (h.ORIGINAL_OFFSET, b"40"),
        (h.ATTEMPTS, b"1"),
        (h.ERROR, b"RuntimeError: db down"),
        (h.NOT_BEFORE, b"1800000001250"),
    ]


def test_the_dlq_headers_name_the_origin_error_attempts_and_carry_the_trace() -> None:
    record_headers = [("traceparent", TRACE)]
    for retries in range(3):  # main -> retry-1 -> retry-2 -> retry-3, carrying the headers along
        record_headers = _fail(retries, record_headers)
    forward = on_failure(
        SUB,
        retries=3,
        topic=SUB.retry_topics[2],
        partition=2,
        offset=7,
        record_headers=record_headers,
        error=ValueError("still broken"),
        now=NOW,
    )
    assert (forward.topic, forward.delay, forward.dead_reason) == (SUB.dlq, None, "exhausted")
    assert dict(forward.headers) == {
        "traceparent": TRACE,
        h.ORIGINAL_TOPIC: TOPIC.encode(),
        h.ORIGINAL_PARTITION: b"2",
        h.ORIGINAL_OFFSET: b"40",  # where it was first read, not the retry topic's offset
        h.ATTEMPTS: b"4",
        h.ERROR: b"ValueError: still broken",
    }
    assert len(forward.headers) == 6  # no duplicates left from the earlier hops


def test_retries_are_due_after_each_delay_of_the_schedule() -> None:
    due = [h.not_before(_fail(retries, [])) for retries in range(3)]
    assert due == [NOW + 1, NOW + 2, NOW + 4]


def test_giving_up_goes_to_the_dlq_at_once() -> None:
    forward = on_failure(
        SUB,
        retries=0,
        topic=TOPIC,
        partition=0,
        offset=3,
        record_headers=None,
        error=ValueError("bad"),
        now=NOW,
        give_up="malformed",
    )
    assert (forward.topic, forward.dead_reason) == (SUB.dlq, "malformed")
    assert h.get(forward.headers, h.ATTEMPTS) == b"1" and h.get(forward.headers, h.NOT_BEFORE) is None


def test_errors_are_cut_to_fit_a_header() -> None:
    assert h.describe_error(KeyError()) == "KeyError"
    long = h.describe_error(RuntimeError("é" * 5000))
    assert long.endswith("...") and len(long.encode()) <= h.MAX_ERROR_BYTES


def test_replays_keep_the_trace_and_name_their_subscriber() -> None:
    dead = [("traceparent", TRACE), (h.ATTEMPTS, b"4"), (h.ERROR, b"x"), (h.ORIGINAL_TOPIC, TOPIC.encode())]
    assert h.replayed(dead, service="notifications", source=f"{SUB.dlq}/2/9") == [
        ("traceparent", TRACE),
        (h.REPLAY_FOR, b"notifications"),
        (h.REPLAYED_FROM, f"{SUB.dlq}/2/9".encode()),
    ]


def test_origin_falls_back_to_where_the_message_is() -> None:
    assert h.Origin.of(TOPIC, 1, 5, None) == h.Origin(TOPIC, 1, 5)
    assert h.Origin.of("x.retry-1", 1, 5, [(h.ORIGINAL_TOPIC, b"a.b.c")]) == h.Origin("x.retry-1", 1, 5)
