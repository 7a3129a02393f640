"""Event types, events as clients see them, and the once-per-publish encoding of an event
(per wire variant in use: JSON or protobuf, deflated or not)."""

from __future__ import annotations

import datetime as dt
import json
import struct
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hub import deflate, protowire

__all__ = ["EventType", "Event", "Encoded", "frame", "frame_text", "now_rfc3339", "dumps",
           "sse_position", "JSON", "DEFLATE", "PROTOBUF", "NARROW", "SSE", "window_bits"]


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
_last_second: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """Returns the current UTC time in RFC 3339 with millisecond precision.

    Every event carries one; the text is made once per millisecond and reused, and its
    date-and-seconds part once per second.
    """
    global _last_stamp, _last_second
    ms = time.time_ns() // 1_000_000
    if ms != _last_stamp[0]:
        second, millis = divmod(ms, 1000)
        if second != _last_second[0]:
            now = dt.datetime.fromtimestamp(second, dt.UTC)
            _last_second = (second, now.strftime("%Y-%m-%dT%H:%M:%S."))
        _last_stamp = (ms, f"{_last_second[1]}{millis:03d}Z")
    return _last_stamp[1]


# One encoder for every event: json.dumps() with options builds a JSONEncoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str:
    """Serialises to compact JSON the way every event is serialised (non-JSON values as str)."""
    return _ENCODER.encode(value)


TEXT, BINARY = 0x1, 0x2  # WebSocket opcodes
# The wire variants of an event. On a WebSocket, bit flags: its subprotocol (JSON or protobuf)
# plus whether it negotiated permessage-deflate, and NARROW (always with DEFLATE) when it capped
# the server's window below 15 bits (hub/deflate.py). SSE is a variant of its own: the
# Server-Sent Events lines of the JSON envelope (edge/sse.py).
JSON, DEFLATE, PROTOBUF, NARROW = 0, 1, 2, 4
SSE = 8
VARIANTS = 9


def window_bits(variant: int) -> int:
    """Returns the deflate window a deflating variant's payloads are made with."""
    return deflate.NARROW_WINDOW_BITS if variant & NARROW else deflate.WINDOW_BITS


def sse_position(channel: str | None, epoch: str, offset: str) -> str:
    """Returns one stream's part of an SSE cursor: `<epoch>:<offset>` for the feed,
    `,<room name>=<epoch>:<offset>` for a room (edge/sse.py composes a connection's cursor)."""
    if channel is None:
        return f"{epoch}:{offset}"
    return f",{channel[5:]}={epoch}:{offset}"


def frame(payload: bytes, opcode: int = TEXT, compressed: bool = False) -> bytes:
    """Returns one unmasked, final WebSocket frame (RFC 6455 5.2) carrying payload.

    `compressed` sets RSV1: the payload is a permessage-deflate message (RFC 7692).
    """
    first = 0x80 | (0x40 if compressed else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def frame_text(payload: bytes) -> bytes:
    """Returns one unmasked, final WebSocket text frame carrying payload."""
    return frame(payload)


class Encoded:
    """An event encoded once per wire variant in use, for every recipient to share.

    `frames[variant]` is None until a recipient of that variant needs it; then it is made once
    (frame_for) and the same bytes go to every connection of that variant. A variant nobody
    uses costs nothing. Deflate applies from deflate.THRESHOLD bytes of payload: below it
    (or when deflate would not shrink the payload) the compressed variant shares the plain
    frame, RSV1 clear.
    """

    __slots__ = ("event", "type", "frames", "_json", "_protobuf")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.type = str(event.type)
        self.frames: list[bytes | None] = [None] * VARIANTS
        self._json: bytes | None = None
        self._protobuf: bytes | None = None

    @property
    def payload(self) -> bytes:
        """The JSON text as UTF-8 bytes."""
        if self._json is None:
            self._json = dumps(self.event.to_wire()).encode("utf-8")
        return self._json

    @property
    def text(self) -> str:
        """The JSON text clients of the default subprotocol receive."""
        return self.payload.decode("utf-8")

    @property
    def protobuf(self) -> bytes:
        """The events.v1 `Event` message (proto/events.proto)."""
        if self._protobuf is None:
            event = self.event
            self._protobuf = protowire.encode_event(self.type, event.data, event.timestamp,
                                                    event.channel, event.offset, event.id)
        return self._protobuf

    @property
    def frame(self) -> bytes:
        """The uncompressed JSON text frame."""
        return self.frames[JSON] or self.frame_for(JSON)

    def frame_for(self, variant: int) -> bytes:
        """Returns the frame for one variant, making it on first use."""
        made = self.frames[variant]
        if made is not None:
            return made
        if variant == SSE:
            made = self.frames[SSE] = self._sse()
            return made
        if variant & PROTOBUF:
            payload, opcode = self.protobuf, BINARY
        else:
            payload, opcode = self.payload, TEXT
        made = None
        if variant & DEFLATE and len(payload) >= deflate.THRESHOLD:
            packed = deflate.deflate_message(payload, window_bits(variant))
            if len(packed) < len(payload):
                made = frame(packed, opcode, compressed=True)
        if made is None:
            plain = variant & PROTOBUF
            made = self.frames[plain] or frame(payload, opcode)
            self.frames[plain] = made
        self.frames[variant] = made
        return made

    def _sse(self) -> bytes:
        """The event's Server-Sent Events lines: `id:` (its stream's position, when it has
        one), `event:` (its type), `data:` (the JSON envelope), then the blank line."""
        event = self.event
        head = b""
        if event.offset is not None and event.epoch is not None:
            position = sse_position(event.channel, event.epoch, event.offset)
            head = b"id: " + position.encode("utf-8") + b"\n"
        return head + b"event: " + self.type.encode("utf-8") + b"\ndata: " + self.payload + b"\n\n"


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
    # The epoch of the stream whose `offset` this is (set with it by the log; not sent in
    # the JSON envelope, only in an SSE cursor).
    epoch: str | None = None

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
        """Returns the event's shared encoding: each wire variant is made once, when needed."""
        return Encoded(self)
