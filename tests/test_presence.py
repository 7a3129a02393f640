"""Presence per user with a grace before leaving, and typing throttled and expiring (fake clock)."""

from __future__ import annotations

import pytest
from fakeclock import FakeClock

from hub.presence import ONLINE, MemoryPresence
from hub.typing import Typing


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def presence(clock) -> tuple[MemoryPresence, list[tuple]]:
    """A presence tracker on the fake clock, and the list of changes it announced."""
    changes: list[tuple] = []
    tracker = MemoryPresence(grace=5.0, scheduler=clock)
    tracker.attach(lambda key, uid, name, joined: changes.append((key, uid, name, joined)))
    return tracker, changes


def test_first_connection_joins_and_later_tabs_do_not(presence):
    """A user joins with the first connection; more tabs only raise the connection count."""
    tracker, changes = presence
    for _ in range(3):
        tracker.join("room:a", 1, "Ann")
    assert changes == [("room:a", 1, "Ann", True)]
    (member,) = tracker.members("room:a")
    assert (member.user_id, member.name, member.connections) == (1, "Ann", 3)


def test_last_connection_leaves_only_after_the_grace(presence, clock):
    """The user leaves 5 s after the last connection closed, not before, and once."""
    tracker, changes = presence
    tracker.join("room:a", 1, "Ann")
    tracker.join("room:a", 1, "Ann")
    tracker.leave("room:a", 1)
    tracker.leave("room:a", 1)
    clock.advance(4.9)
    assert changes == [("room:a", 1, "Ann", True)]
    clock.advance(0.2)
    assert changes == [("room:a", 1, "Ann", True), ("room:a", 1, "Ann", False)]
    assert tracker.members("room:a") == [] and clock.pending == 0


def test_reload_within_the_grace_does_not_flap(presence, clock):
    """Leaving and coming back within the grace announces neither a leave nor a second join."""
    tracker, changes = presence
    tracker.join(ONLINE, 1, "Ann")
    tracker.leave(ONLINE, 1)
    clock.advance(3.0)
    tracker.join(ONLINE, 1, "Ann")
    clock.advance(10.0)
    assert changes == [(ONLINE, 1, "Ann", True)]
    assert [m.connections for m in tracker.members(ONLINE)] == [1]


def test_keys_and_users_are_independent(presence, clock):
    """Leaving one room keeps the user in another and online; other users are untouched."""
    tracker, changes = presence
    tracker.join("room:a", 1, "Ann")
    tracker.join("room:b", 1, "Ann")
    tracker.join("room:a", 2, "Bob")
    tracker.leave("room:a", 1)
    clock.advance(6)
    assert [m.user_id for m in tracker.members("room:a")] == [2]
    assert [m.user_id for m in tracker.members("room:b")] == [1]
    assert changes[-1] == ("room:a", 1, "Ann", False)


def test_extra_leave_is_ignored(presence, clock):
    """A leave without a matching join changes nothing (a connection closed twice)."""
    tracker, changes = presence
    tracker.leave("room:a", 1)
    tracker.join("room:a", 1, "Ann")
    tracker.leave("room:a", 1)
    tracker.leave("room:a", 1)
    clock.advance(6)
    assert changes == [("room:a", 1, "Ann", True), ("room:a", 1, "Ann", False)]


# -- typing ------------------------------------------------------------------------------------


@pytest.fixture
def typing(clock) -> tuple[Typing, list[tuple]]:
    """A typing tracker on the fake clock, and the list of signals it sent."""
    sent: list[tuple] = []
    tracker = Typing(lambda ch, uid, name, active: sent.append((clock.now, ch, uid, active)),
                     scheduler=clock, clock=clock)
    return tracker, sent


def test_typing_non_stop_sends_true_once_then_false_6_s_after_the_last(typing, clock):
    """Signals every 100 ms for 3 s send one `true`; `false` follows 6 s after the last one."""
    tracker, sent = typing
    start = clock.now
    for _ in range(30):
        tracker.signal("room:a", 1, "Ann", True)
        clock.advance(0.1)
    clock.advance(5.85)
    assert [s[3] for s in sent] == [True]
    clock.advance(0.2)
    assert [s[3] for s in sent] == [True, False]
    assert sent[1][0] == pytest.approx(start + 2.9 + 6.0, abs=0.01)


def test_typing_flapping_is_throttled_to_two_signals_per_second(typing, clock):
    """Flips every 50 ms make at most 2 signals per second, ending in the last state asked."""
    tracker, sent = typing
    for n in range(40):  # 2 s of flapping
        tracker.signal("room:a", 1, "Ann", n % 2 == 0)
        clock.advance(0.05)
    clock.advance(1.0)
    times = [s[0] for s in sent]
    for earlier, later in zip(times, times[1:], strict=False):
        assert later - earlier >= 0.5 - 1e-9
    assert len(sent) <= 6 and sent[-1][3] is False  # the last thing asked was false


def test_typing_false_without_true_sends_nothing(typing, clock):
    """A user who was not typing and says so sends nothing."""
    tracker, sent = typing
    tracker.signal("room:a", 1, "Ann", False)
    clock.advance(10)
    assert sent == [] and clock.pending == 0


def test_explicit_false_ends_typing_and_cancels_the_expiry(typing, clock):
    """`active: false` is sent at once (past the throttle) and no second false follows."""
    tracker, sent = typing
    tracker.signal("room:a", 1, "Ann", True)
    clock.advance(1.0)
    tracker.signal("room:a", 1, "Ann", False)
    clock.advance(10)
    assert [(s[0] - 1000, s[3]) for s in sent] == [(0.0, True), (1.0, False)]
    assert clock.pending == 0


def test_typing_is_per_user_and_channel(typing, clock):
    """Two users, or one user in two rooms, are throttled separately."""
    tracker, sent = typing
    tracker.signal("room:a", 1, "Ann", True)
    tracker.signal("room:a", 2, "Bob", True)
    tracker.signal("room:b", 1, "Ann", True)
    assert sorted((s[1], s[2]) for s in sent) == [("room:a", 1), ("room:a", 2), ("room:b", 1)]
