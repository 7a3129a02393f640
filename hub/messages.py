"""What travels through a broker: publications with their targets, and registry controls.

Each kind of target and each kind of control is one small frozen class; the hub handles them
with `match`, so a new kind is one class here plus one case there (and one in hub/codec.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.disconnect import ACCOUNT_DELETED, SESSION_REVOKED, Close
from hub.events import Event

if TYPE_CHECKING:
    from hub.client import Client

__all__ = [
    "ToAll",
    "ToUser",
    "ToRole",
    "ToChannel",
    "Target",
    "ALL",
    "ADMINS",
    "to_user",
    "to_role",
    "FEED",
    "stream_of",
    "matches",
    "Publication",
    "SetRole",
    "CloseUser",
    "CloseSession",
    "Unsubscribe",
    "CloseStream",
    "RevokeKey",
    "Control",
    "Message",
]


@dataclass(frozen=True, slots=True)
class ToAll:
    """Every connection."""


@dataclass(frozen=True, slots=True)
class ToUser:
    """Every connection (tab) of one user."""

    user_id: int


@dataclass(frozen=True, slots=True)
class ToRole:
    """Every connection whose user holds one role."""

    role: str


@dataclass(frozen=True, slots=True)
class ToChannel:
    """Every connection subscribed to a channel, optionally leaving out one user's."""

    channel: str
    skip_user: int | None = None


Target = ToAll | ToUser | ToRole | ToChannel

ALL: tuple[Target, ...] = (ToAll(),)
ADMINS: tuple[Target, ...] = (ToRole("admin"), ToRole("superadmin"))


def to_user(user_id: int) -> tuple[Target, ...]:
    """Targets every connection (tab) of one user."""
    return (ToUser(user_id),)


def to_role(role: str) -> tuple[Target, ...]:
    """Targets every connection whose user holds role."""
    return (ToRole(role),)


# The stream every v1 event belongs to. The rule for events with several targets (the user
# and the admins, say): an event is one entry in one stream, whatever its targets. Every
# server-side audience (all, user, role) shares the feed, and each connection sees the feed
# filtered by its own audience; a connection matched by several targets gets the event once.
# Each room (`room:<name>`) is a stream of its own.
FEED = "feed"


def stream_of(targets: tuple[Target, ...]) -> str:
    """Returns the stream an event with these targets belongs to: its channel, or the feed."""
    for target in targets:
        if isinstance(target, ToChannel):
            return target.channel
    return FEED


def matches(client: Client, target: Target) -> bool:
    """True when target addresses client (the same rule as the hub's indexes)."""
    match target:
        case ToAll():
            return True
        case ToUser(user_id):
            return client.user_id == user_id
        case ToRole(role):
            return client.role == role
        case ToChannel(channel, skip_user):
            return channel in client.channels and client.user_id != skip_user
    raise TypeError(f"unknown target {target!r}")


@dataclass(frozen=True, slots=True)
class Publication:
    """An event on its way to its targets, in one stream.

    A broker that keeps a log gives a `logged` event its position (`offset`) and appends it
    to its stream's history before the hub encodes it, so positioning never costs a second
    encoding. Ephemeral events (typing, presence, replies) are not logged and carry no offset.
    """

    event: Event
    targets: tuple[Target, ...]
    stream: str = FEED
    logged: bool = False


@dataclass(frozen=True, slots=True)
class SetRole:
    """Re-indexes a user's open connections under a new role."""

    user_id: int
    role: str


@dataclass(frozen=True, slots=True)
class CloseUser:
    """Closes a user's connections, or only those opened with a token older than a version."""

    user_id: int
    close: Close = ACCOUNT_DELETED
    below_version: int | None = None


@dataclass(frozen=True, slots=True)
class CloseSession:
    """Closes every connection opened with a token of one login session."""

    session_id: str
    close: Close = SESSION_REVOKED


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Unsubscribes a channel's connections (or one user's) and tells them why."""

    channel: str
    reason: str
    user_id: int | None = None  # None: every subscriber (the room was deleted)


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Closes every connection that follows a stream (the feed: all; a room: its subscribers).

    A node applies it to itself when it fell so far behind a stream that the entries it
    missed are gone from the log: those connections resume elsewhere, never with a silent gap.
    """

    stream: str
    close: Close


@dataclass(frozen=True, slots=True)
class RevokeKey:
    """Tells every node an API key was revoked: it touches no socket, but each node's cache of
    verified keys (services/apikeys.py, a control observer) forgets the key at once."""

    key_id: int


Control = SetRole | CloseUser | CloseSession | Unsubscribe | CloseStream | RevokeKey
Message = Publication | Control
