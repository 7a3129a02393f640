"""The recovery log: one sequencer and a bounded history per stream (feed, `room:<name>`).

Each stream has an epoch (a random string that changes when its history is lost), its last
offset, and the most recent entries (offset, targets, positioned event), trimmed by count and
age. Offsets are positive integers, sent to clients as decimal strings they echo back. The
sequencer only hands out offsets up to a durable reservation when one is set (the stream
service writes it ahead, so an offset is never reused after a crash); a stream that runs out
raises StreamUnavailable until the next reservation is confirmed.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from hub.events import Encoded, Event
from hub.messages import Target

__all__ = ["Entry", "Recovery", "StreamLog", "MemoryLog", "StreamUnavailable", "new_epoch",
           "parse_offset"]

MAX_OFFSET = 2**62


class StreamUnavailable(Exception):
    """The stream has no reserved offset left; publish again once the reservation arrives."""


def new_epoch() -> str:
    """Returns a fresh epoch: unique across restarts and hosts."""
    return uuid.uuid4().hex[:16]


def parse_offset(text: object) -> int | None:
    """Returns the offset a client sent as an int, or None when it is malformed."""
    if not isinstance(text, str) or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value < MAX_OFFSET else None


@dataclass(slots=True)
class Entry:
    """One logged event in its stream: its offset, targets and the positioned event."""

    offset: int
    targets: tuple[Target, ...]
    event: Event
    at: float  # wall-clock seconds when it was logged (for the age limit)
    # The event encoded by its first replay, shared by every later one (a reconnect storm
    # replays the same entries to many connections).
    encoded: Encoded | None = None

    def encode(self) -> Encoded:
        """Returns the event serialised and framed, encoding it at most once."""
        if self.encoded is None:
            self.encoded = self.event.encode()
        return self.encoded


@dataclass(frozen=True, slots=True)
class Recovery:
    """The answer to a resume: where the stream is now and, if recovered, what was missed."""

    epoch: str
    offset: str
    recovered: bool
    entries: tuple[Entry, ...] = ()

    def position(self, missed: int) -> dict[str, object]:
        """Returns the `{epoch, offset, recovered, missed}` fields of a welcome or reply."""
        return {"epoch": self.epoch, "offset": self.offset, "recovered": self.recovered,
                "missed": missed}


@dataclass(slots=True)
class _Stream:
    epoch: str
    last: int = 0
    # Every entry with an offset above `floor` (up to `last`) is in `entries`.
    floor: int = 0
    # Offsets at most this are durable-reserved; None: no limit (no persistence).
    reserved: int | None = None
    # (low, high]: offsets that may have been delivered before a crash but are not known.
    gaps: list[tuple[int, int]] = field(default_factory=list)
    entries: deque[Entry] = field(default_factory=deque)


class StreamLog(Protocol):
    """What the resume path and the history verb need from a recovery log.

    Positioning is the broker's business (MemoryLog.append on the IOLoop, a Lua script in
    Redis); readers call `await prepare(stream, since)` and then, with no await in between
    that matters, `recover()` in the IOLoop turn that registers or subscribes.
    """

    async def prepare(self, stream: str, since: object = None) -> None:
        """Makes recover(stream, since) answerable now (may read a shared log)."""

    def recover(self, stream: str, since: object, epoch: object) -> Recovery:
        """Returns the entries after `since` if the position is exactly recoverable."""

    def position(self, stream: str) -> tuple[str, str]:
        """Returns (epoch, last offset) of a stream as this node delivers it."""

    def before(self, stream: str, offset: int | None, limit: int) -> list[Entry]:
        """Returns up to limit retained entries older than offset, newest first."""

    def sweep(self) -> int:
        """Drops entries past the TTL from every stream; returns how many."""


class MemoryLog:
    """An in-memory StreamLog for a single node, touched only on the IOLoop."""

    def __init__(self, size: int = 1000, ttl: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self.streams: dict[str, _Stream] = {}
        # Set by the stream service: called with (stream, reserved) when a stream comes within
        # low_water offsets of its reservation, so the next block is reserved in time.
        self.on_low: Callable[[str, int], None] | None = None
        self.low_water = 0

    def stream(self, name: str) -> _Stream:
        """Returns a stream's state, creating it (fresh epoch, empty) on first use."""
        state = self.streams.get(name)
        if state is None:
            state = self.streams[name] = _Stream(new_epoch())
            if self.on_low is not None:
                state.reserved = 0
                self.on_low(name, 0)
        return state

    def restore(self, name: str, epoch: str, last: int, reserved: int | None,
                entries: list[Entry], gaps: list[tuple[int, int]] = ()) -> None:
        """Installs a stream's state and recent entries loaded from storage (start-up)."""
        kept = sorted(entries, key=lambda e: e.offset)[-self.size:] if self.size else []
        for entry in kept:  # each event carries its stream's epoch, as append() gives it
            if entry.event.epoch != epoch:
                entry.event = replace(entry.event, epoch=epoch)
                entry.encoded = None
        floor = kept[0].offset - 1 if kept else last
        self.streams[name] = _Stream(epoch, last, floor, reserved,
                                     [g for g in gaps if g[1] > floor], deque(kept))

    def has_room(self, name: str) -> bool:
        """True when the stream can position an event now without waiting for a reservation."""
        state = self.stream(name)
        return state.reserved is None or state.last < state.reserved

    def reserve(self, name: str, reserved: int) -> None:
        """Records a confirmed durable reservation: offsets up to it may be used."""
        state = self.stream(name)
        if state.reserved is not None and reserved > state.reserved:
            state.reserved = reserved

    def append(self, stream: str, targets: tuple[Target, ...], event: Event) -> Event:
        """Positions event as the next entry of stream and returns it with its offset."""
        state = self.stream(stream)
        offset = state.last + 1
        if state.reserved is not None:
            if self.on_low is not None and state.reserved - offset < self.low_water:
                self.on_low(stream, state.reserved)  # the stream service dedups requests
            if offset > state.reserved:
                raise StreamUnavailable(stream)
        state.last = offset
        positioned = replace(event, offset=str(offset), epoch=state.epoch)
        now = self.clock()
        state.entries.append(Entry(offset, targets, positioned, now))
        self._trim(state, now)
        return positioned

    def sweep(self) -> int:
        """Drops the entries older than the TTL from every stream; returns how many.

        A stream is trimmed when it is used; one nobody publishes to or recovers from (a quiet
        or deleted room) would otherwise keep its last `size` events for good.
        """
        now, dropped = self.clock(), 0
        for state in self.streams.values():
            before = len(state.entries)
            self._trim(state, now)
            dropped += before - len(state.entries)
        return dropped

    def _trim(self, state: _Stream, now: float) -> None:
        entries = state.entries
        while entries and (len(entries) > self.size or now - entries[0].at > self.ttl):
            state.floor = entries.popleft().offset
        if not entries:
            state.floor = state.last

    def position(self, stream: str) -> tuple[str, str]:
        """Returns (epoch, last offset) of a stream."""
        state = self.stream(stream)
        return state.epoch, str(state.last)

    async def prepare(self, stream: str, since: object = None) -> None:
        """Nothing to do: every stream lives here."""

    def recover(self, stream: str, since: object, epoch: object) -> Recovery:
        """Returns the entries after `since` if the position is exactly recoverable.

        Not recovered (and nothing to replay) without a position, for a malformed one, another
        epoch, a position older than the retained window or newer than the stream, or one in
        a range left uncertain by a crash.
        """
        state = self.stream(stream)
        self._trim(state, self.clock())
        current = Recovery(state.epoch, str(state.last), False)
        offset = parse_offset(since)
        if offset is None or epoch != state.epoch:
            return current
        if offset < state.floor or offset > state.last:
            return current
        if any(low < offset <= high for low, high in state.gaps):
            return current
        return replace(current, recovered=True, entries=self._after(state, offset))

    @staticmethod
    def _after(state: _Stream, offset: int) -> tuple[Entry, ...]:
        entries = state.entries
        if not entries or entries[-1].offset <= offset:
            return ()
        # Offsets increase along the deque: skip from the left by bisection.
        low, high = 0, len(entries)
        while low < high:
            mid = (low + high) // 2
            if entries[mid].offset <= offset:
                low = mid + 1
            else:
                high = mid
        return tuple(entries[i] for i in range(low, len(entries)))

    def before(self, stream: str, offset: int | None, limit: int) -> list[Entry]:
        """Returns up to limit retained entries older than offset (all if None), newest first."""
        state = self.stream(stream)
        self._trim(state, self.clock())
        out: list[Entry] = []
        for entry in reversed(state.entries):
            if offset is None or entry.offset < offset:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out
