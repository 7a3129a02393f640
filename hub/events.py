"""Event types, events as clients see them, and the once-per-publish encoding of an event."""

from __future__ import annotations

import datetime as dt
import json
import struct
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["EventType", "Event", "Encoded", "frame_text", "now_rfc3339", "dumps"]


class EventType(StrEnum):
    """Every event the server emits: the seed's nine, the room events and replies."""

    CONNECTION_ESTABLISHED = "connection.established"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    USER_ROLE_CHANGED = "user.role.changed"
    PROFILE_UPDATED = "profile.updated"
    PASSWORD_CHANGED = "password.changed"
    SYSTEM_ALERT = "system.alert"
    HEALTH_STATUS_CHANGED = "health.status.changed"
    CHANNEL_MESSAGE = "channel.message"
    CHANNEL_UNSUBSCRIBED = "channel.unsubscribed"
    PRESENCE_JOINED = "presence.joined"
    PRESENCE_LEFT = "presence.left"
    TYPING = "typing"
    USER_ONLINE = "user.online"
    USER_OFFLINE = "user.offline"
    AUTH_REFRESHED = "auth.refreshed"  # reply to an inbound auth.refresh
    REPLY = "reply"  # success reply to an inbound request
    ERROR = "error"  # reply to an inbound message the server cannot act on


_last_stamp: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """Returns the current UTC time in RFC 3339 with millisecond precision.

    Every event carries one; the text is made once per millisecond and reused.
    """
    global _last_stamp
    ms = time.time_ns() // 1_000_000
    if ms != _last_stamp[0]:
        now = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        _last_stamp = (ms, now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z")
    return _last_stamp[1]


def dumps(value: Any) -> str:
    """Serialises to compact JSON the way every event is serialised (non-JSON values as str)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


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


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event serialised once: the JSON text, its UTF-8 bytes and the framed bytes."""

    type: str
    text: str
    payload: bytes
    frame: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """One event as clients see it: {"type", "data", "timestamp"}.

    `channel` and `offset` are the v2 envelope's optional fields: written only when set
    (room events carry a channel; logged events an offset). `id` is set only on a reply or
    error to a client request that carried one.
    """

    type: str
    data: dict[str, Any]
    timestamp: str = field(default_factory=now_rfc3339)
    channel: str | None = None
    offset: str | None = None
    id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """Returns the event as the JSON object clients receive."""
        message: dict[str, Any] = {"type": str(self.type)}
        if self.id is not None:
            message["id"] = self.id
        message["data"] = self.data
        message["timestamp"] = self.timestamp
        if self.channel is not None:
            message["channel"] = self.channel
        if self.offset is not None:
            message["offset"] = self.offset
        return message

    def encode(self) -> Encoded:
        """Serialises and frames the event once, for every recipient to share."""
        text = dumps(self.to_wire())
        payload = text.encode("utf-8")
        return Encoded(str(self.type), text, payload, frame_text(payload))
