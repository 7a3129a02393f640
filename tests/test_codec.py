"""The broker wire codec: every message kind survives a round trip through bytes."""

from __future__ import annotations

import json
import typing

import pytest

from hub import codec
from hub.disconnect import ACCOUNT_DELETED, FELL_BEHIND, SESSION_REVOKED, Close
from hub.events import Event, EventType
from hub.messages import (
    ADMINS,
    ALL,
    CloseSession,
    CloseStream,
    CloseUser,
    Control,
    Message,
    Publication,
    RevokeKey,
    SetRole,
    ToAll,
    ToChannel,
    ToRole,
    ToUser,
    Unsubscribe,
    to_user,
)

# One example of every message kind, with every target kind and optional field exercised.
EXAMPLES: list[Message] = [
    Publication(Event(EventType.SYSTEM_ALERT, {"message": "hi", "metadata": {"n": [1, 2]}}), ALL),
    Publication(Event(EventType.USER_UPDATED, {"user_id": 7, "changes": ["name"]},
                      "2026-01-01T00:00:00.000Z"), to_user(7) + ADMINS),
    Publication(Event("channel.message", {"body": {"text": "Zoë ✓"}}, channel="room:lobby",
                      offset="42"), ALL, "room:lobby", logged=True),
    SetRole(7, "admin"),
    CloseUser(7, ACCOUNT_DELETED),
    CloseUser(7, SESSION_REVOKED, below_version=3),
    CloseSession("3f1c", SESSION_REVOKED),
    Publication(Event("typing", {"active": True}, channel="room:a"),
                (ToChannel("room:a", skip_user=7),), "room:a"),
    Publication(Event("presence.joined", {"user_id": 7}, channel="room:a"),
                (ToChannel("room:a"),), "room:a"),
    Unsubscribe("room:a", "room deleted"),
    Unsubscribe("room:a", "removed from room", user_id=7),
    CloseStream("feed", FELL_BEHIND),
    RevokeKey(12),
]


def _kinds(union: object) -> set[type]:
    kinds: set[type] = set()
    for arg in typing.get_args(union):
        kinds |= _kinds(arg) if typing.get_args(arg) else {arg}
    return kinds


def test_examples_cover_every_message_and_target_kind():
    """The round-trip examples include every Message class and every Target class."""
    assert {type(m) for m in EXAMPLES} == _kinds(Message)
    assert _kinds(Control) <= _kinds(Message)
    targets = {type(t) for m in EXAMPLES if isinstance(m, Publication) for t in m.targets}
    assert targets == {ToAll, ToUser, ToRole, ToChannel}


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_with_its_node_id(message):
    """decode(encode(m)) gives back an equal message and the sender's node id."""
    data = codec.encode(message, "node-a")
    assert isinstance(data, bytes)
    node, decoded = codec.decode(data)
    assert node == "node-a"
    assert decoded == message
    if isinstance(message, Publication):  # clients would receive the very same bytes
        assert decoded.event.encode().payload == message.event.encode().payload


def test_logged_flag_and_stored_targets_round_trip():
    """A logged publication stays logged across the codec, and outbox targets decode back."""
    message = Publication(Event("user.created", {"user_id": 1}, offset="7"), ADMINS, logged=True)
    assert codec.decode(codec.encode(message, "n"))[1].logged is True
    targets = to_user(7) + ADMINS + (ToChannel("room:a", 3),)
    assert codec.decode_targets(codec.encode_targets(targets)) == targets


def test_close_reasons_survive_as_close_tuples():
    """A decoded control carries a Close, so the hub can unpack it into close(code, reason)."""
    _, decoded = codec.decode(codec.encode(CloseSession("s", SESSION_REVOKED), "n"))
    assert isinstance(decoded, CloseSession) and isinstance(decoded.close, Close)
    assert tuple(decoded.close) == (1008, "session revoked")


@pytest.mark.parametrize("data", [
    b"not json",
    b"[]",
    json.dumps({"node": "n", "kind": "teleport"}).encode(),
    json.dumps({"node": "n", "kind": "set_role"}).encode(),
    json.dumps({"node": "n", "kind": "publication", "stream": "feed", "targets": [["planet", 1]],
                "event": {"type": "x", "data": {}, "timestamp": "t"}}).encode(),
])
def test_undecodable_bytes_raise_codec_error(data):
    """Bytes that are not a known message raise CodecError, never a KeyError or TypeError."""
    with pytest.raises(codec.CodecError):
        codec.decode(data)
