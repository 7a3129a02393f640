"""The events.v1.protobuf subprotocol: `Request` messages out, `Event` messages in.

The schema is events.proto beside this module (a copy of the server's proto/events.proto);
events_pb2.py is generated from it with the server's pinned protoc (`make proto`). Decoded
events and replies have the JSON protocol's shape: a payload's fields under the same names,
`*_json` text fields parsed back into `body`, `metadata`, ... .
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import DecodeError, Message

from . import events_pb2 as pb

__all__ = ["SUBPROTOCOL", "encode_request", "decode_event", "DecodeError"]

SUBPROTOCOL = "events.v1.protobuf"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _request_payload(verb: str, data: dict[str, Any]) -> tuple[str, Message]:
    """Returns the Request oneof field and its message for one verb."""
    channel = data.get("channel", "")
    if verb == "subscribe":
        return "subscribe", pb.Subscribe(channel=channel, since=data.get("since"),
                                         epoch=data.get("epoch"))
    if verb in ("unsubscribe", "presence"):
        return verb, pb.ChannelRef(channel=channel)
    if verb == "publish":
        return "publish", pb.Publish(channel=channel, data_json=_dumps(data.get("data")))
    if verb == "history":
        return "history", pb.History(channel=channel, before=data.get("before"),
                                     limit=data.get("limit"))
    if verb == "typing":
        return "typing", pb.TypingSignal(channel=channel, active=bool(data.get("active")))
    if verb == "auth.refresh":
        return "auth_refresh", pb.AuthRefresh(token=data.get("token", ""))
    raise ValueError(f"no protobuf Request for {verb!r}")


def encode_request(request_id: int | None, verb: str, data: dict[str, Any]) -> bytes:
    """Returns one request as serialised `Request` bytes."""
    field, payload = _request_payload(verb, data)
    request = pb.Request(id=request_id)
    getattr(request, field).CopyFrom(payload)
    serialised: bytes = request.SerializeToString()
    return serialised


def _to_dict(message: Message, drop_empty: bool = False) -> dict[str, Any]:
    """Returns a payload message as the JSON protocol's dict (JSON text fields parsed)."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if field.has_presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        if name.endswith("_json"):
            if value:
                out[name[:-5]] = json.loads(value)
        elif field.message_type is None:
            out[name] = list(value) if field.is_repeated else value
        elif field.message_type.GetOptions().map_entry:
            out[name] = dict(value)
        elif field.is_repeated:
            out[name] = [_to_dict(item) for item in value]
        else:
            out[name] = _to_dict(value)
        if drop_empty and out.get(name) == []:
            del out[name]  # a Reply is the union of every verb's fields: keep the set ones
    return out


def decode_event(raw: bytes) -> dict[str, Any]:
    """Returns an `Event` as the JSON protocol's frame: type, data, timestamp and, when
    set, channel, offset and id. Raises DecodeError for bytes that are not an Event."""
    event = pb.Event()
    event.ParseFromString(raw)
    frame: dict[str, Any] = {"type": event.type, "timestamp": event.timestamp}
    for name in ("channel", "offset", "id"):
        if event.HasField(name):
            frame[name] = getattr(event, name)
    which = event.WhichOneof("data")
    if which == "data_json":
        frame["data"] = json.loads(event.data_json)
    elif which is not None:
        frame["data"] = _to_dict(getattr(event, which), drop_empty=which == "reply")
    else:
        frame["data"] = {}
    return frame
