"""The gateway's per-client token buckets, with an injected clock."""

from __future__ import annotations

import pytest

from keelson_services.services.gateway.ratelimit import TokenBucketLimiter
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
