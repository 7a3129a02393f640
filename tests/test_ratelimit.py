"""The per-connection inbound budget: a token bucket and abuse detection (fake clock)."""

from __future__ import annotations

from fakeclock import FakeClock

from auth.ratelimit import InboundLimit, TokenBucket


def test_bucket_allows_the_burst_then_the_rate():
    """A full bucket takes `burst` events at once, then refills at `rate` per second."""
    clock = FakeClock()
    bucket = TokenBucket(rate=20, burst=50, clock=clock)
    assert sum(bucket.take() for _ in range(60)) == 50
    clock.advance(0.5)
    assert sum(bucket.take() for _ in range(60)) == 10
    clock.advance(100)
    assert sum(bucket.take() for _ in range(60)) == 50  # never more than the burst


def test_steady_client_at_the_rate_is_never_limited():
    """A client sending exactly 20 messages per second for a minute is always answered."""
    clock = FakeClock()
    limit = InboundLimit(rate=20, burst=50, clock=clock)
    verdicts = []
    for _ in range(20 * 60):
        verdicts.append(limit.check())
        clock.advance(0.05)
    assert set(verdicts) == {"ok"}


def test_twice_the_rate_is_limited_but_not_abuse():
    """At 2x the rate some messages are refused, and the connection is not closed."""
    clock = FakeClock()
    limit = InboundLimit(rate=20, burst=50, clock=clock)
    verdicts = []
    for _ in range(40 * 30):
        verdicts.append(limit.check())
        clock.advance(0.025)
    assert "limited" in verdicts and "abuse" not in verdicts
    assert verdicts.count("ok") <= 50 + 20 * 30 + 1


def test_over_three_times_the_rate_for_ten_seconds_is_abuse():
    """Sending at 4x the rate is called abuse within the 10 s window, and not before 600."""
    clock = FakeClock()
    limit = InboundLimit(rate=20, burst=50, clock=clock)
    sent = 0
    while limit.check() != "abuse":
        sent += 1
        clock.advance(1 / 80)
        assert sent < 10_000
    assert sent == 600 and clock.now - 1000 < 10
