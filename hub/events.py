"""Event types, delivery targets and the once-per-publish encoding of an event."""

from __future__ import annotations

import datetime as dt
import json
import struct
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "EventType",
    "Event",
    "Encoded",
    "Target",
    "ALL",
    "ADMINS",
    "to_user",
    "to_role",
    "Delivery",
    "Control",
    "frame_text",
    "now_rfc3339",
]


class EventType(StrEnum):
    """Every event the server emits: the seed's nine plus replies to inbound messages."""

    CONNECTION_ESTABLISHED = "connection.established"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    USER_ROLE_CHANGED = "user.role.changed"
    PROFILE_UPDATED = "profile.updated"
    PASSWORD_CHANGED = "password.changed"
    SYSTEM_ALERT = "system.alert"
    HEALTH_STATUS_CHANGED = "health.status.changed"
    AUTH_REFRESHED = "auth.refreshed"  # reply to an inbound auth.refresh
    ERROR = "error"  # reply to an inbound message the server cannot act on


def now_rfc3339() -> str:
    """Returns the current UTC time in RFC 3339 with millisecond precision."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def frame_text(payload: bytes) -> bytes:
    """Returns one unmasked, final WebSocket text frame (RFC 6455 5.2) carrying payload."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


@dataclass(frozen=True)
class Encoded:
    """An event serialised once: the JSON text, its UTF-8 bytes and the framed bytes."""

    type: str
    text: str
    payload: bytes
    frame: bytes

    @classmethod
    def from_payload(cls, type_: str, payload: bytes) -> Encoded:
        """Builds an Encoded from already-serialised JSON bytes (e.g. received from a broker)."""
        return cls(type_, payload.decode("utf-8"), payload, frame_text(payload))


@dataclass(frozen=True)
class Event:
    """One event as clients see it: {"type", "data", "timestamp"}."""

    type: str
    data: dict[str, Any]
    timestamp: str = field(default_factory=now_rfc3339)

    def encode(self) -> Encoded:
        """Serialises and frames the event once, for every recipient to share."""
        type_ = str(self.type)
        message = {"type": type_, "data": self.data, "timestamp": self.timestamp}
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
        payload = text.encode("utf-8")
        return Encoded(type_, text, payload, frame_text(payload))


@dataclass(frozen=True)
class Target:
    """Who receives a delivery: everyone, one user's connections or one role's."""

    kind: str  # "all" | "user" | "role"
    key: int | str | None = None


ALL = (Target("all"),)
ADMINS = (Target("role", "admin"), Target("role", "superadmin"))


def to_user(user_id: int) -> tuple[Target, ...]:
    """Targets every connection (tab) of one user."""
    return (Target("user", user_id),)


def to_role(role: str) -> tuple[Target, ...]:
    """Targets every connection whose user holds role."""
    return (Target("role", role),)


@dataclass(frozen=True)
class Delivery:
    """A published event and its targets, as carried by a broker."""

    targets: tuple[Target, ...]
    event: Encoded


@dataclass(frozen=True)
class Control:
    """A registry change every node must apply (re-index a user, close connections)."""

    op: str  # "set_role" | "close_user" | "close_session"
    user_id: int | None = None
    role: str | None = None
    session_id: str | None = None
    below_version: int | None = None  # close_user: only tokens older than this version
    code: int = 1008
    reason: str = ""
