"""The gateway's per-client token buckets, with an injected clock."""

from __future__ import annotations

import pytest

from keelson_services.services.gateway.ratelimit import Decision, Policy, TokenBucketLimiter
from keelson_services.services.gateway.shared_limits import decide
from tests.unit.svc_helpers import FakeClock


def test_a_client_may_burst_then_is_limited_with_the_time_to_wait() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("a").allowed for _ in range(3)] == [True, True, True]
    refused = limiter.take("a")
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5) and refused.retry_after_header == "1"


def test_buckets_refill_at_the_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("a")
    clock.advance(0.5)
    assert limiter.take("a").allowed
    assert not limiter.take("a").allowed
    clock.advance(3600)
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]


def test_clients_have_buckets_of_their_own() -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=FakeClock())
    assert limiter.take("a").allowed and not limiter.take("a").allowed
    assert limiter.take("b").allowed


def test_the_least_recently_seen_client_is_forgotten_first() -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=FakeClock(), max_clients=2)
    limiter.take("a")
    limiter.take("b")
    limiter.take("a")  # a is now the most recent
    limiter.take("c")  # evicts b
    assert limiter.take("b").allowed  # b starts again with a full bucket
    assert not limiter.take("c").allowed


def test_a_wait_longer_than_a_second_is_rounded_up_in_retry_after() -> None:
    limiter = TokenBucketLimiter(rate=0.1, burst=1, clock=FakeClock())
    limiter.take("a")
    assert limiter.take("a").retry_after_header == "10"


def test_peeking_tells_what_taking_would_without_taking() -> None:
    limiter = TokenBucketLimiter(rate=1, burst=2, clock=FakeClock())
    assert limiter.peek("a").allowed and limiter.peek("a").allowed
    limiter.take("a")
    limiter.take("a")
    refused = limiter.peek("a")
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("tat", "allowed", "expected"),
    [
        (100.5, True, Decision(True, 2, 0.0)),  # one of three taken: two left
        (101.5, True, Decision(True, 0, 0.0)),  # the last one taken
        (101.5, False, Decision(False, 0, 0.5)),  # refused: the next in half a second
    ],
)
def test_a_gcra_counter_is_the_same_decision_as_a_token_bucket(tat: float, allowed: bool, expected: Decision) -> None:
    # rate 2/s, burst 3: an emission interval of 0.5 s and a window of 1.5 s, now = 100.
    assert decide(Policy("p", rate=2, burst=3), tat=tat, now=100.0, allowed=allowed) == expected


def test_a_policy_refuses_a_rate_that_never_refills() -> None:
    with pytest.raises(ValueError, match="rate limit p: rate must be positive"):
        Policy("p", rate=0, burst=3)
