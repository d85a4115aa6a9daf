"""The moving-window script against a real Redis, with the clock under the test's control."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from redis.asyncio import Redis

from app import ratelimit
from app.ratelimit import Decision, RateLimiter
from tests.support.app_process import fast_settings

# The limiter reads only the rate limit from the settings; no PostgreSQL is involved.
UNUSED_DATABASE = "postgresql://unused@127.0.0.1/unused"


@pytest.fixture
def hit_at(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[float, str], Decision]]:
    """hit_at(t, bucket): one request to `bucket` at t seconds, under a 3-per-minute limit."""
    loop = asyncio.new_event_loop()
    client = Redis.from_url(redis_url)
    limiter = RateLimiter(fast_settings(UNUSED_DATABASE, redis_url, rate_limit="3/minute"), client)
    base = 1_800_000_000.0

    def hit(seconds: float, bucket: str = "ip:192.0.2.1") -> Decision:
        monkeypatch.setattr(ratelimit.time, "time", lambda: base + seconds)
        decision = loop.run_until_complete(limiter.hit(bucket))
        return Decision(
            decision.allowed, decision.limit, decision.remaining, decision.reset_at - base
        )

    yield hit
    loop.run_until_complete(client.aclose())
    loop.close()


def test_the_window_moves_with_each_request(hit_at: Callable[[float, str], Decision]) -> None:
    # Three requests fill the window; the reset is when the oldest of them leaves it.
    assert hit_at(0) == Decision(True, 3, 2, 60.0)
    assert hit_at(10) == Decision(True, 3, 1, 60.0)
    assert hit_at(20) == Decision(True, 3, 0, 60.0)
    assert hit_at(59.5) == Decision(False, 3, 0, 60.0)
    # At 60.5 the request of 0 s has left: one slot, and the next reset is 10 s + 60.
    assert hit_at(60.5) == Decision(True, 3, 0, 70.0)
    assert hit_at(61) == Decision(False, 3, 0, 70.0)
    # The refused requests took no slot: at 80.5 the requests of 10 s and 20 s have left.
    assert hit_at(80.5) == Decision(True, 3, 1, 120.5)


def test_no_double_burst_at_a_window_edge(hit_at: Callable[[float, str], Decision]) -> None:
    # A fixed window would allow 3 at 59 s and 3 more at 61 s.
    assert [hit_at(59).allowed for _ in range(3)] == [True, True, True]
    assert [hit_at(61).allowed for _ in range(3)] == [False, False, False]
    assert hit_at(119.5).allowed is True


def test_buckets_are_counted_apart(hit_at: Callable[[float, str], Decision]) -> None:
    for t in (0, 1, 2):
        assert hit_at(t, "ip:192.0.2.1").allowed
    assert not hit_at(3, "ip:192.0.2.1").allowed
    assert hit_at(3, "key:abc") == Decision(True, 3, 2, 63.0)
