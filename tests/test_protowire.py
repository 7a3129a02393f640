"""The events.v1.protobuf codec: every event fits proto/events.proto, requests decode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from hub import events_pb2 as pb
from hub import protowire
from hub.events import Event, EventType

ROOT = Path(__file__).resolve().parent.parent
USER = {"user_id": 42, "name": "John Doe"}
MESSAGE = {"id": "0194396cd278a1b2c3000000", "from": USER, "body": {"text": "hi", "n": [1, 2]},
           "sent_at": "2025-01-06T10:38:00.120Z"}
# One example of every event the server sends (docs/websocket.md), with its data.
SAMPLES: dict[str, dict] = {
    "connection.established": {"client_id": "c-1", "message": "Welcome", "role": "user",
                               "user_id": 24, "epoch": "3f9c", "offset": "1842",
                               "recovered": False, "missed": 0},
    "user.created": {"user_id": 42, "name": "John", "email": "j@example.com", "role": "user",
                     "created_at": "2025-01-06T10:30:00Z"},
    "user.updated": {"user_id": 42, "changes": ["name", "email"],
                     "updated_at": "2025-01-06T10:30:01Z"},
    "profile.updated": {"user_id": 42, "changes": ["age"], "updated_at": "2025-01-06T10:30:01Z"},
    "user.role.changed": {"user_id": 42, "old_role": "user", "new_role": "admin",
                          "changed_by": 1, "changed_at": "2025-01-06T10:31:00Z"},
    "password.changed": {"user_id": 42, "changed_at": "2025-01-06T10:32:00.300Z"},
    "user.deleted": {"user_id": 42, "email": "j@example.com", "deleted_by": 1,
                     "deleted_at": "2025-01-06T10:33:00.119Z"},
    "system.alert": {"message": "Maintenance", "priority": "high",
                     "metadata": {"scheduled_time": "2025-01-07T02:00:00Z"}, "sent_by": 1},
    "health.status.changed": {"status": "error", "previous_status": "ok",
                              "checks": {"database": "error"},
                              "changed_at": "2025-01-06T10:35:00.003Z"},
    "channel.message": MESSAGE,
    "channel.unsubscribed": {"channel": "room:team", "reason": "removed from room"},
    "presence.joined": USER,
    "presence.left": USER,
    "typing": {**USER, "active": True},
    "user.online": USER,
    "user.offline": USER,
    "auth.refreshed": {"expires_at": 1736160660},
    "error": {"code": "forbidden", "message": "members only"},
}
REPLIES = [
    {"channel": "room:lobby", "subscribed": True, "epoch": "9b1d", "offset": "41",
     "recovered": True, "missed": 3},
    {"channel": "room:lobby", "subscribed": False},
    {"channel": "room:lobby", "id": "0192c3", "sent_at": "2026-11-26T10:30:01.042Z",
     "offset": "42"},
    {"channel": "room:lobby", "members": [{"user_id": 42, "name": "Ann", "connections": 2}]},
    {"channel": "room:lobby",
     "messages": [{**MESSAGE, "offset": "7"}, {**MESSAGE, "offset": None}]},
]


def decode(raw: bytes) -> dict:
    """Returns an Event as the JSON protocol's object: the payload's fields, JSON text parsed."""
    event = pb.Event()
    event.ParseFromString(raw)
    out = MessageToDict(event, preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True)
    which = event.WhichOneof("data")
    data = out.pop(which)
    return {**out, "data": json.loads(data) if which == "data_json" else _unjson(data),
            "payload": which}


def _unjson(value):
    if isinstance(value, dict):
        return {k[:-5] if k.endswith("_json") else k:
                json.loads(v) if k.endswith("_json") else _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def _ints(value):
    """MessageToDict writes int64 as strings (proto3 JSON); compare as ints."""
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 12 else value


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


@pytest.mark.parametrize("type_", sorted(SAMPLES))
def test_every_event_fits_its_payload_message(type_):
    """Each documented event maps to its own payload field, not the data_json fallback."""
    event = Event(type_, SAMPLES[type_], "2025-01-06T10:30:00.123Z", channel="room:lobby",
                  offset="5")
    decoded = decode(event.encode().protobuf)
    assert decoded["payload"] == protowire.PAYLOADS[type_]
    assert decoded["type"] == type_ and decoded["timestamp"] == event.timestamp
    assert decoded["channel"] == "room:lobby" and decoded["offset"] == "5"
    assert _ints(decoded["data"]) == _ints(SAMPLES[type_])


def test_every_event_type_has_a_payload():
    """Every EventType the server emits has a payload message in the schema."""
    assert set(map(str, EventType)) == set(protowire.PAYLOADS)


@pytest.mark.parametrize("data", REPLIES)
def test_every_reply_shape_fits_the_reply_message(data):
    """Replies of subscribe, unsubscribe, publish, presence and history carry their fields."""
    decoded = decode(Event(EventType.REPLY, data, "t", id=7).encode().protobuf)
    assert decoded["payload"] == "reply" and decoded["id"] == 7
    got = {k: v for k, v in decoded["data"].items() if v not in ([], "")}
    assert _ints(got) == _ints(_drop_none(data))


def test_unknown_type_or_unfit_data_travels_as_json_text():
    """A custom event type (the seed's Notify helpers) and misfit data fall back to data_json."""
    custom = decode(Event("order.shipped", {"order": 9}, "t").encode().protobuf)
    assert custom["payload"] == "data_json" and custom["data"] == {"order": 9}
    odd = decode(Event(EventType.TYPING, {"user_id": "nine", "x": 1}, "t").encode().protobuf)
    assert odd["payload"] == "data_json" and odd["data"] == {"user_id": "nine", "x": 1}


def test_requests_decode_to_the_json_protocols_shape():
    """Each verb's Request becomes {"id", "type", "data"}, defaults included, JSON parsed."""
    cases = [
        (pb.Request(id=1, subscribe=pb.Subscribe(channel="room:a", since="4", epoch="e")),
         {"id": 1, "type": "subscribe", "data": {"channel": "room:a", "since": "4",
                                                 "epoch": "e"}}),
        (pb.Request(subscribe=pb.Subscribe(channel="room:a")),
         {"type": "subscribe", "data": {"channel": "room:a"}}),
        (pb.Request(id=2, unsubscribe=pb.ChannelRef(channel="room:a")),
         {"id": 2, "type": "unsubscribe", "data": {"channel": "room:a"}}),
        (pb.Request(id=3, publish=pb.Publish(channel="room:a", data_json='{"t": 1}')),
         {"id": 3, "type": "publish", "data": {"channel": "room:a", "data": {"t": 1}}}),
        (pb.Request(presence=pb.ChannelRef(channel="room:a")),
         {"type": "presence", "data": {"channel": "room:a"}}),
        (pb.Request(history=pb.History(channel="room:a", limit=5)),
         {"type": "history", "data": {"channel": "room:a", "limit": 5}}),
        (pb.Request(typing=pb.TypingSignal(channel="room:a", active=False)),
         {"type": "typing", "data": {"channel": "room:a", "active": False}}),
        (pb.Request(auth_refresh=pb.AuthRefresh(token="tok")),
         {"type": "auth.refresh", "data": {"token": "tok"}}),
    ]
    for request, expected in cases:
        assert protowire.decode_request(request.SerializeToString(), json.loads) == expected


def test_bytes_that_are_no_request_or_name_no_verb_raise_decode_error():
    """Garbage and an empty Request are refused with DecodeError."""
    with pytest.raises(protowire.DecodeError):
        protowire.decode_request(b"\xff\xff\xff", json.loads)
    with pytest.raises(protowire.DecodeError):
        protowire.decode_request(pb.Request(id=4).SerializeToString(), json.loads)


def test_generated_module_is_current(tmp_path):
    """hub/events_pb2.py is exactly what `make proto` makes from proto/events.proto."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools (requirements-dev.txt) is missing")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
                    f"--python_out={tmp_path}", str(ROOT / "proto" / "events.proto")],
                   check=True)
    fresh = (tmp_path / "events_pb2.py").read_text()
    assert fresh == (ROOT / "hub" / "events_pb2.py").read_text(), "run `make proto`"
