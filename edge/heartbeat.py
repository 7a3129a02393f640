"""One timer for every WebSocket's pings, pong deadlines and token expiry.

Tornado gives each WebSocket a ping task (a coroutine that sleeps between pings), and the
socket handler scheduled a timer for its token's expiry: per socket, a Task with its coroutine
frame and two scheduled timers, all made during the handshake and kept while the socket lives.
Here one PeriodicCallback per application serves every socket instead:

- Pings: a wheel of `ticks` slots, one tick apart, that turns once per ping interval. A socket
  joins the slot the wheel has just left, so it is first pinged one interval after it opened
  (less up to one tick), then every interval. Each tick pings its slot's sockets and files
  them under the slot one pong timeout later; a socket found there without a pong since its
  ping is closed with "ping timed out", as Tornado does.
- Token expiry: sockets are filed under the second their token expires; each tick closes the
  sockets of every second that has passed, so a socket closes within a tick of its expiry.

The tick is about a second (the ping interval divided into whole slots; the interval itself
if that is shorter). The timer runs only while a socket is registered.
"""

from __future__ import annotations

import heapq
import math
import time
from typing import Protocol

from tornado.ioloop import PeriodicCallback

__all__ = ["Heartbeat", "Beat", "Pinged"]


class Expiring(Protocol):
    """A socket handler whose token expiry the heartbeat tracks."""

    def token_expired(self) -> None:
        """Closes the socket because its access token has expired."""


class Pinged(Protocol):
    """A socket's WebSocket protocol, as the wheel pings it (edge/protocol.py StrictProtocol)."""

    @property
    def pong_received(self) -> bool:
        """Whether a pong came back since the last ping()."""

    def ping(self) -> None:
        """Sends a ping."""

    def is_closing(self) -> bool:
        """Whether a close has begun."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Starts a close handshake."""


class Beat:
    """A socket's place on the ping wheel. Tornado's protocol keeps it where it keeps its ping
    task (`_ping_coroutine`) and calls `cancel()` when the socket closes, as on the task."""

    __slots__ = ("heartbeat", "protocol", "slot", "due")

    def __init__(self, heartbeat: Heartbeat, protocol: Pinged, slot: int) -> None:
        self.heartbeat = heartbeat
        self.protocol = protocol
        self.slot = slot  # the ping slot
        self.due = -1  # the pong-deadline slot while a ping is unanswered, else -1

    def cancel(self) -> None:
        """Takes the socket off the wheel."""
        self.heartbeat.leave(self)


class Heartbeat:
    """Pings, pong deadlines and token expiries of one application's sockets, on one timer."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.ticks = max(1, round(interval))
        self.tick = interval / self.ticks  # seconds
        # Ticks from a ping to its pong deadline: the timeout rounded up to whole ticks, at
        # most one turn (Tornado, too, caps the timeout at the interval).
        self.deadline = min(self.ticks, math.ceil(min(timeout, interval) / self.tick - 1e-9))
        self.pinged = [set[Beat]() for _ in range(self.ticks)]
        self.awaiting = [set[Beat]() for _ in range(self.ticks)]
        self.index = 0  # the slot the wheel last served
        # Token expiry: second -> the handlers whose token expires in it, and a heap of the
        # seconds that have handlers.
        self.expiring: dict[int, set[Expiring]] = {}
        self._seconds: list[int] = []
        self.members = 0  # beats plus expiring handlers: the timer runs while there are any
        self._timer: PeriodicCallback | None = None

    # -- pings ---------------------------------------------------------------------------

    def join(self, protocol: Pinged) -> Beat:
        """Puts a socket's protocol on the wheel; it is first pinged about an interval from now."""
        beat = Beat(self, protocol, self.index)
        self.pinged[self.index].add(beat)
        self._grew()
        return beat

    def leave(self, beat: Beat) -> None:
        """Takes a socket off the wheel (it closed)."""
        if beat in self.pinged[beat.slot]:
            self.pinged[beat.slot].discard(beat)
            if beat.due >= 0:
                self.awaiting[beat.due].discard(beat)
            self._shrank()

    # -- token expiry --------------------------------------------------------------------

    def expire(self, handler: Expiring, at: float) -> int:
        """Calls handler.token_expired() within a tick after `at` (epoch seconds); returns the
        key that forget() takes."""
        second = math.ceil(at)
        handlers = self.expiring.get(second)
        if handlers is None:
            handlers = self.expiring[second] = set()
            heapq.heappush(self._seconds, second)
        handlers.add(handler)
        self._grew()
        return second

    def forget(self, handler: Expiring, key: int) -> None:
        """Cancels an expire() (the socket closed, or its token was refreshed)."""
        handlers = self.expiring.get(key)
        if handlers is not None and handler in handlers:
            handlers.discard(handler)
            self._shrank()

    # -- the timer -----------------------------------------------------------------------

    def _grew(self) -> None:
        self.members += 1
        if self._timer is None:
            self._timer = PeriodicCallback(self.run, self.tick * 1000)
            self._timer.start()

    def _shrank(self) -> None:
        self.members -= 1
        if self.members == 0 and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def run(self) -> None:
        """One tick: pong deadlines, then pings, of the next slot; then the passed expiries."""
        self.index = index = (self.index + 1) % self.ticks
        due = self.awaiting[index]
        if due:
            self.awaiting[index] = set()
            for beat in due:
                beat.due = -1
                if not beat.protocol.pong_received:
                    beat.protocol.close(reason="ping timed out")  # Tornado's own words
        deadline = (index + self.deadline) % self.ticks
        for beat in list(self.pinged[index]):
            protocol = beat.protocol
            if protocol.is_closing():
                continue
            protocol.ping()
            beat.due = deadline
            self.awaiting[deadline].add(beat)
        self._expire(time.time())

    def _expire(self, now: float) -> None:
        seconds = self._seconds
        while seconds and seconds[0] <= now:
            handlers = self.expiring.pop(heapq.heappop(seconds), None)
            for handler in handlers or ():
                self._shrank()
                handler.token_expired()
