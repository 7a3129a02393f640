"""The broker wire codec: every Message as JSON bytes, so it can cross a process boundary.

A frame is `{"node": <sender's node id>, "kind": <message kind>, ...fields}`. Targets are
`["all"]`, `["user", id]`, `["role", name]` or
`["channel", name, skip_user]`; closes are `[code, reason]`. JSON keeps the
codec dependency-free and readable in `redis-cli MONITOR`; the event inside a publication is
the same JSON object clients receive.
"""

from __future__ import annotations

import json
from typing import Any

from hub.disconnect import Close
from hub.events import Event, dumps
from hub.messages import (
    CloseSession,
    CloseStream,
    CloseUser,
    Message,
    Publication,
    RevokeKey,
    SetRole,
    Target,
    ToAll,
    ToChannel,
    ToRole,
    ToUser,
    Unsubscribe,
)

__all__ = ["encode", "decode", "CodecError", "encode_targets", "decode_targets"]


class CodecError(ValueError):
    """Raised when bytes from a broker are not a message this version understands."""


def _target(target: Target) -> list[Any]:
    match target:
        case ToAll():
            return ["all"]
        case ToUser(user_id):
            return ["user", user_id]
        case ToRole(role):
            return ["role", role]
        case ToChannel(channel, skip_user):
            return ["channel", channel, skip_user]
    raise TypeError(f"unknown target {target!r}")


def _parse_target(raw: list[Any]) -> Target:
    match raw:
        case ["all"]:
            return ToAll()
        case ["user", int(user_id)]:
            return ToUser(user_id)
        case ["role", str(role)]:
            return ToRole(role)
        case ["channel", str(channel), int() | None as skip_user]:
            return ToChannel(channel, skip_user)
    raise CodecError(f"unknown target {raw!r}")


def encode_targets(targets: tuple[Target, ...]) -> str:
    """Returns targets as JSON text (the outbox stores them this way)."""
    return dumps([_target(t) for t in targets])


def decode_targets(text: str) -> tuple[Target, ...]:
    """Returns the targets stored by encode_targets()."""
    return tuple(_parse_target(t) for t in json.loads(text))


def _fields(message: Message) -> dict[str, Any]:
    match message:
        case Publication(event, targets, stream, logged):
            return {"kind": "publication", "stream": stream, "event": event.to_wire(),
                    "targets": [_target(t) for t in targets], "logged": logged}
        case SetRole(user_id, role):
            return {"kind": "set_role", "user_id": user_id, "role": role}
        case CloseUser(user_id, close, below_version):
            return {"kind": "close_user", "user_id": user_id, "close": list(close),
                    "below_version": below_version}
        case CloseSession(session_id, close):
            return {"kind": "close_session", "session_id": session_id, "close": list(close)}
        case Unsubscribe(channel, reason, user_id):
            return {"kind": "unsubscribe", "channel": channel, "reason": reason,
                    "user_id": user_id}
        case CloseStream(stream, close):
            return {"kind": "close_stream", "stream": stream, "close": list(close)}
        case RevokeKey(key_id):
            return {"kind": "revoke_key", "key_id": key_id}
    raise TypeError(f"unknown message {message!r}")


def encode(message: Message, node: str) -> bytes:
    """Returns message as one JSON document tagged with the sending node's id."""
    return dumps({"node": node, **_fields(message)}).encode("utf-8")


def _event(raw: dict[str, Any]) -> Event:
    return Event(raw["type"], raw["data"], raw["timestamp"], raw.get("channel"),
                 raw.get("offset"))


def _message(raw: dict[str, Any]) -> Message:
    kind = raw.get("kind")
    if kind == "publication":
        targets = tuple(_parse_target(t) for t in raw["targets"])
        return Publication(_event(raw["event"]), targets, raw["stream"],
                           bool(raw.get("logged", False)))
    if kind == "set_role":
        return SetRole(raw["user_id"], raw["role"])
    if kind == "close_user":
        return CloseUser(raw["user_id"], Close(*raw["close"]), raw["below_version"])
    if kind == "close_session":
        return CloseSession(raw["session_id"], Close(*raw["close"]))
    if kind == "unsubscribe":
        return Unsubscribe(raw["channel"], raw["reason"], raw["user_id"])
    if kind == "close_stream":
        return CloseStream(raw["stream"], Close(*raw["close"]))
    if kind == "revoke_key":
        return RevokeKey(int(raw["key_id"]))
    raise CodecError(f"unknown message kind {kind!r}")


def decode(data: bytes) -> tuple[str, Message]:
    """Returns (sending node id, message) from bytes made by encode()."""
    try:
        raw = json.loads(data)
        return raw["node"], _message(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise CodecError(f"undecodable broker message: {exc}") from None
