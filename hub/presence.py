"""Who is where: per-user presence in channels and online, with a grace before leaving.

Presence is per user, not per connection: a user joins a key (a channel, or ONLINE for the
whole server) with their first connection there and leaves when the last one has gone and
has not come back within the grace (5 s), so a page reload does not flap. The hub feeds it
connection changes; it reports joins and leaves through a callback. `MemoryPresence` keeps
state for one node; `hub.redis.presence.RedisPresence` shares it across the nodes of a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tornado.ioloop import IOLoop

__all__ = ["ONLINE", "GRACE_SECONDS", "Member", "Presence", "MemoryPresence", "Scheduler"]

ONLINE = ""  # the key for "connected anywhere" (user.online / user.offline)
GRACE_SECONDS = 5.0

# (key, user_id, name, joined): True when the user joined the key, False when they left it.
ChangeHandler = Callable[[str, int, str, bool], None]


@dataclass(slots=True)
class Member:
    """One user present under a key: their name and how many connections they have there."""

    user_id: int
    name: str
    connections: int


class Scheduler(Protocol):
    """Runs a callback later (IOLoop.call_later) and cancels it (IOLoop.remove_timeout)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any: ...

    def remove_timeout(self, handle: Any) -> None: ...


class Presence(Protocol):
    """Tracks which users are present under which keys."""

    def attach(self, on_change: ChangeHandler) -> None:
        """Sets the callback told of every join and (after the grace) every leave."""

    def join(self, key: str, user_id: int, name: str) -> None:
        """Counts one more connection of the user under key."""

    def leave(self, key: str, user_id: int) -> None:
        """Counts one connection fewer; the user leaves after the grace if none is left."""

    def members(self, key: str) -> list[Member]:
        """Returns the users present under key on this node, by user id."""

    async def fetch(self, key: str) -> list[Member]:
        """Returns the users present under key on every node, by user id."""


class MemoryPresence:
    """Presence for a single node, with IOLoop timers for the grace."""

    def __init__(self, grace: float = GRACE_SECONDS, scheduler: Scheduler | None = None) -> None:
        self.grace = grace
        self._scheduler = scheduler
        self._on_change: ChangeHandler | None = None
        self._present: dict[str, dict[int, Member]] = {}
        # A member with no connection left, waiting out the grace: (key, user_id) -> timer.
        self._leaving: dict[tuple[str, int], Any] = {}

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler or IOLoop.current()

    def attach(self, on_change: ChangeHandler) -> None:
        """Sets the join/leave callback."""
        self._on_change = on_change

    def join(self, key: str, user_id: int, name: str) -> None:
        """Counts a connection; announces the join unless the user was only reloading."""
        members = self._present.setdefault(key, {})
        member = members.get(user_id)
        if member is not None:
            member.connections += 1
            member.name = name
            timer = self._leaving.pop((key, user_id), None)
            if timer is not None:  # back within the grace: no leave, no second join
                self.scheduler.remove_timeout(timer)
            return
        members[user_id] = Member(user_id, name, 1)
        self._announce(key, user_id, name, True)

    def leave(self, key: str, user_id: int) -> None:
        """Uncounts a connection; the last one starts the grace before the user leaves."""
        member = self._present.get(key, {}).get(user_id)
        if member is None or member.connections == 0:
            return
        member.connections -= 1
        if member.connections == 0:
            self._leaving[(key, user_id)] = self.scheduler.call_later(
                self.grace, lambda: self._expire(key, user_id))

    def _expire(self, key: str, user_id: int) -> None:
        self._leaving.pop((key, user_id), None)
        members = self._present.get(key, {})
        member = members.get(user_id)
        if member is None or member.connections:
            return
        del members[user_id]
        if not members:
            del self._present[key]
        self._announce(key, user_id, member.name, False)

    def members(self, key: str) -> list[Member]:
        """Returns the users present under key (those within their grace included)."""
        return sorted(self._present.get(key, {}).values(), key=lambda m: m.user_id)

    async def fetch(self, key: str) -> list[Member]:
        """Returns members(key): with one node, this node's users are everyone's."""
        return self.members(key)

    def _announce(self, key: str, user_id: int, name: str, joined: bool) -> None:
        if self._on_change is not None:
            self._on_change(key, user_id, name, joined)
