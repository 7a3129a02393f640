"""The events.v1.protobuf subprotocol: events to `Event` bytes, `Request` bytes to requests.

The schema is proto/events.proto (hub/events_pb2.py is generated from it: `make proto`). An
event's `data` fills the payload message its type selects, field by field under the same
names as in JSON; a value the schema holds as JSON text goes to the field named `<key>_json`.
An event type the schema does not know, or data that does not fit its message, travels
whole as JSON text in `data_json`, so every event reaches a protobuf client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError, Message

from hub import events_pb2 as pb

__all__ = ["SUBPROTOCOL", "JSON_SUBPROTOCOL", "encode_event", "decode_request", "PAYLOADS",
           "VERBS", "DecodeError", "BadJsonField"]

log = logging.getLogger("hub")

SUBPROTOCOL = "events.v1.protobuf"
JSON_SUBPROTOCOL = "events.v1.json"

# Event type -> the field of Event's `data` oneof that carries its payload.
PAYLOADS: dict[str, str] = {
    "connection.established": "welcome",
    "user.created": "user_created",
    "user.updated": "user_updated",
    "profile.updated": "user_updated",
    "user.role.changed": "user_role_changed",
    "password.changed": "password_changed",
    "user.deleted": "user_deleted",
    "system.alert": "system_alert",
    "health.status.changed": "health_status_changed",
    "channel.message": "channel_message",
    "channel.unsubscribed": "channel_unsubscribed",
    "presence.joined": "presence",
    "presence.left": "presence",
    "typing": "typing",
    "user.online": "user_presence",
    "user.offline": "user_presence",
    "auth.refreshed": "auth_refreshed",
    "reply": "reply",
    "error": "error",
}
# Request's `request` oneof field -> the verb (the JSON protocol's "type").
VERBS: dict[str, str] = {
    "subscribe": "subscribe", "unsubscribe": "unsubscribe", "publish": "publish",
    "presence": "presence", "history": "history", "typing": "typing",
    "auth_refresh": "auth.refresh",
}


class BadJsonField(ValueError):
    """A Request's JSON text field does not parse; carries the request's id for the error."""

    def __init__(self, message: str, request_id: int | None) -> None:
        super().__init__(message)
        self.request_id = request_id


class _Unfit(Exception):
    """Data that does not fit the payload message of its event type."""


def _dumps(value: Any) -> str:
    """Serialises JSON text fields as hub.events.dumps serialises events."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _fill(message: Message, data: Any) -> None:
    """Sets message's fields from a JSON-like dict with the same keys."""
    if not isinstance(data, dict):
        raise _Unfit(f"expected an object, got {type(data).__name__}")
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        if value is None:
            continue
        field = fields.get(key)
        if field is None:
            if key + "_json" not in fields:
                raise _Unfit(f"no field {key!r} in {message.DESCRIPTOR.name}")
            setattr(message, key + "_json", _dumps(value))
        elif field.message_type is None:
            if field.is_repeated:
                getattr(message, key).extend(value)
            else:
                setattr(message, key, value)
        elif field.message_type.GetOptions().map_entry:
            getattr(message, key).update(value)
        elif field.is_repeated:
            container = getattr(message, key)
            for item in value:
                _fill(container.add(), item)
        else:
            _fill(getattr(message, key), value)


def encode_event(type_: str, data: dict[str, Any], timestamp: str, channel: str | None,
                 offset: str | None, request_id: int | None) -> bytes:
    """Returns one event serialised as an events.v1 `Event`."""
    event = pb.Event(type=type_, timestamp=timestamp)
    if channel is not None:
        event.channel = channel
    if offset is not None:
        event.offset = offset
    if request_id is not None:
        event.id = request_id
    field = PAYLOADS.get(type_)
    if field is not None:
        try:
            payload = getattr(event, field)
            payload.SetInParent()
            _fill(payload, data)
            return event.SerializeToString()
        except (_Unfit, TypeError, ValueError) as exc:
            log.warning("%s event does not fit events.proto (%s): sent as data_json", type_, exc)
            event.ClearField(field)
    event.data_json = _dumps(data)
    return event.SerializeToString()


def _fields_of(message: Message, loads: Callable[[str], Any]) -> dict[str, Any]:
    """Returns a request message as the JSON protocol's `data` dict (JSON text parsed)."""
    data: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.has_presence and not message.HasField(field.name):
            continue
        value = getattr(message, field.name)
        if field.name.endswith("_json"):
            # Publish's data_json is the body, `data` in the JSON protocol's publish request.
            name = field.name[:-5]
            data[name] = loads(value) if value else None
        else:
            data[field.name] = value
    return data


def decode_request(raw: bytes, loads: Callable[[str], Any]) -> dict[str, Any]:
    """Returns a `Request` as the JSON protocol's `{"id"?, "type", "data"}` request.

    Raises DecodeError for bytes that are not a Request or one that names no verb, and
    BadJsonField when `loads` (which parses the JSON text fields) raises ValueError.
    """
    request = pb.Request()
    request.ParseFromString(raw)
    which = request.WhichOneof("request")
    if which is None:
        raise DecodeError("a Request names one verb: " + ", ".join(VERBS))
    request_id = request.id if request.HasField("id") else None
    try:
        data = _fields_of(getattr(request, which), loads)
    except ValueError as exc:
        raise BadJsonField(str(exc), request_id) from None
    parsed: dict[str, Any] = {"type": VERBS[which], "data": data}
    if request_id is not None:
        parsed["id"] = request_id
    return parsed
