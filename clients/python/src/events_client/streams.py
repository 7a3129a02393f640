"""Stream positions: where the feed and each room stand, what a resume asks for, what it got.

A stream is the feed (key None) or a room (`room:<name>`). Its position is the last offset
delivered and the epoch it belongs to. A welcome or a subscribe reply answers a resume with
`{epoch, offset, recovered, missed}`; when it recovered, `missed` replayed events follow and
the position advances through them, then moves to the answer's offset (the stream's head), as
static/client.js does. Duplicates are dropped by offset as a safety net: right after an answer
(the only place a replay and live delivery meet) an event at or before the position is one
already delivered. On one socket the server never repeats an event, so later a lower offset
means the stream restarted under a new epoch and is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .event import RECOVERY, Event, utc_now

__all__ = ["Stream", "Streams", "Report", "FEED", "offset_key"]

FEED = None  # the feed's key among the streams


def offset_key(offset: str) -> int | None:
    """Returns an offset as a number to compare (offsets are opaque strings; this server's
    are decimal), or None when it is not one."""
    return int(offset) if offset.isdigit() else None


def _at_or_before(offset: str, position: str) -> bool:
    """Whether an offset is not after a position (an equal one, or a lower number)."""
    if offset == position:
        return True
    a, b = offset_key(offset), offset_key(position)
    return a is not None and b is not None and a < b


@dataclass
class Stream:
    """One stream's position and, while a resume is replaying, what is still to come."""

    epoch: str | None = None
    offset: str | None = None
    replay_left: int = 0
    head: str | None = None  # the answer's offset, the position once the replay is over
    guard: bool = False      # drop what is at or before the position (right after an answer)

    def resume(self) -> dict[str, str]:
        """Returns the `since`/`epoch` a resume sends ({} before the first answer)."""
        if self.epoch is None or self.offset is None:
            return {}
        return {"since": self.offset, "epoch": self.epoch}

    def answer(self, data: dict[str, Any]) -> None:
        """Takes a welcome's or subscribe reply's position; expects its replay if any."""
        epoch, offset = str(data.get("epoch", "")), str(data.get("offset", ""))
        missed = int(data.get("missed") or 0)
        if data.get("recovered") and missed > 0 and self.offset is not None:
            self.replay_left, self.head = missed, offset
        else:
            self.offset, self.replay_left, self.head = offset, 0, None
        self.epoch = epoch
        self.guard = True

    def accept(self, offset: str) -> bool:
        """Advances past a delivered event's offset; False for a duplicate to drop."""
        replaying = self.replay_left > 0
        if replaying:
            self.replay_left -= 1
        duplicate = (self.guard and self.offset is not None
                     and _at_or_before(offset, self.offset))
        if not duplicate:
            self.guard = False
            self.offset = offset
        if replaying and self.replay_left == 0 and self.head is not None:
            if self.offset is None or not _at_or_before(self.head, self.offset):
                self.offset = self.head
            self.head = None
        return not duplicate

    def interrupted(self) -> None:
        """Forgets an unfinished replay (the socket dropped): resume from what arrived."""
        self.replay_left, self.head = 0, None


@dataclass
class Streams:
    """The feed and every room the client keeps subscribed."""

    feed: Stream = field(default_factory=Stream)
    rooms: dict[str, Stream] = field(default_factory=dict)

    def get(self, channel: str | None) -> Stream | None:
        """Returns a stream by key (None: the feed), or None for a room not kept."""
        return self.feed if channel is FEED else self.rooms.get(channel)

    def add(self, channel: str) -> Stream:
        """Starts keeping a room (no position until its first subscribe reply)."""
        return self.rooms.setdefault(channel, Stream())

    def replaying(self) -> bool:
        """Whether some stream still expects replayed events."""
        return self.feed.replay_left > 0 or any(s.replay_left for s in self.rooms.values())

    def interrupted(self) -> None:
        """Forgets every unfinished replay."""
        self.feed.interrupted()
        for stream in self.rooms.values():
            stream.interrupted()


@dataclass
class Report:
    """The `recovery` event of one (re)connect: each stream's recovered and missed.

    It is complete once every stream expected has answered and every replay has arrived.
    A connection that drops before that passes its answers on to the next one, so a stream
    that could not recover is reported even if the socket that said so did not last.
    """

    expected: list[str | None] = field(default_factory=list)
    answers: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    waiting: set[str | None] = field(default_factory=set)  # not answered on this socket yet

    def expect(self, keys: list[str | None]) -> None:
        """Sets the streams this connection answers for, in order (the feed first)."""
        self.expected = list(keys)
        self.waiting = set(keys)

    def answered(self, key: str | None, data: dict[str, Any],
                 error: str | None = None) -> None:
        """Records one stream's answer (merged with an earlier, interrupted one)."""
        entry = {"channel": key, "recovered": bool(data.get("recovered")) and error is None,
                 "missed": int(data.get("missed") or 0)}
        if error is not None:
            entry["error"] = error
        self.waiting.discard(key)
        earlier = self.answers.get(key)
        if earlier is not None:
            entry["recovered"] = entry["recovered"] and earlier["recovered"]
            entry["missed"] += earlier["missed"]
        self.answers[key] = entry

    def forget(self, key: str | None) -> None:
        """Stops waiting for a stream the application left."""
        if key in self.expected:
            self.expected.remove(key)
        self.waiting.discard(key)
        self.answers.pop(key, None)

    def complete(self, streams: Streams) -> bool:
        """Whether every expected stream answered and no replay is still arriving."""
        return not self.waiting and not streams.replaying()

    def event(self) -> Event:
        """Returns the `recovery` event."""
        entries = [self.answers[key] for key in self.expected]
        return Event(RECOVERY, {"streams": entries}, utc_now())
