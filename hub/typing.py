"""Typing indicators: at most 2 signals per second per user and channel, ending by themselves.

A `typing` signal is ephemeral: never logged, never stored. Signals are throttled on the
trailing edge, so a user typing non-stop sends `active: true` at most every 0.5 s and the last
state always gets out; `active` ends by itself 6 s after the last `true`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.ioloop import IOLoop

from hub.presence import Scheduler

__all__ = ["Typing", "MIN_INTERVAL", "EXPIRY"]

MIN_INTERVAL = 0.5  # seconds between two signals of one user in one channel (2 per second)
EXPIRY = 6.0  # seconds after the last `true` before `active` ends by itself

# (channel, user_id, name, active): sends one typing event to the channel's other subscribers.
Send = Callable[[str, int, str, bool], None]


@dataclass(slots=True)
class _State:
    name: str
    sent: bool = False  # the last state sent
    sent_at: float = float("-inf")
    wanted: bool = False  # the state the user asked for last
    flush: Any = None  # timer for a throttled signal
    expiry: Any = None  # timer ending `active` by itself


class Typing:
    """Throttles and expires typing signals per (user, channel)."""

    def __init__(
        self, send: Send, scheduler: Scheduler | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = MIN_INTERVAL, expiry: float = EXPIRY,
    ) -> None:
        self._send = send
        self._scheduler = scheduler
        self._clock = clock
        self.min_interval = min_interval
        self.expiry = expiry
        self._states: dict[tuple[int, str], _State] = {}

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler or IOLoop.current()

    def signal(self, channel: str, user_id: int, name: str, active: bool) -> None:
        """Records what the user says; sends it now or when the throttle allows."""
        key = (user_id, channel)
        state = self._states.get(key)
        if state is None:
            if not active:
                return  # not typing, and nobody was told otherwise
            state = self._states[key] = _State(name)
        state.wanted = active
        if state.expiry is not None:
            self.scheduler.remove_timeout(state.expiry)
            state.expiry = None
        if active:
            state.expiry = self.scheduler.call_later(self.expiry,
                                                     lambda: self.signal(channel, user_id,
                                                                         name, False))
        self._flush(key, state)

    def _flush(self, key: tuple[int, str], state: _State, timer: bool = False) -> None:
        if timer:
            state.flush = None
        elif state.flush is not None:
            return  # a throttled flush is due; it sends whatever the user wants by then
        wait = state.sent_at + self.min_interval - self._clock()
        if state.wanted == state.sent:
            if not state.wanted and wait <= 0 and state.expiry is None:
                del self._states[key]  # idle, and past the throttle: nothing to remember
            elif not state.wanted:
                state.flush = self.scheduler.call_later(
                    wait, lambda: self._flush(key, state, timer=True))
            return
        if wait > 0:
            state.flush = self.scheduler.call_later(
                wait, lambda: self._flush(key, state, timer=True))
            return
        state.sent, state.sent_at = state.wanted, self._clock()
        self._send(key[1], key[0], state.name, state.wanted)
        if not state.wanted:  # remember the send until the throttle has passed
            state.flush = self.scheduler.call_later(
                self.min_interval, lambda: self._flush(key, state, timer=True))

    def forget_channel(self, channel: str, user_id: int) -> None:
        """Ends the user's typing in channel at once (they left it)."""
        if (user_id, channel) in self._states:
            self.signal(channel, user_id, self._states[(user_id, channel)].name, False)
