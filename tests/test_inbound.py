"""Unit tests of the inbound dispatcher (services/inbound.py), without sockets."""

from __future__ import annotations

import json

import pytest

from auth.ratelimit import InboundLimit
from hub.disconnect import BINARY_UNSUPPORTED, REFRESH_REJECTED
from services.errors import AuthenticationError
from services.inbound import Inbound, Outcome
from services.principal import Principal


class FakePeer:
    """A connection that records rebinds and subscriptions."""

    def __init__(self, user_id: int = 7, rate: float = 1000, burst: int = 1000) -> None:
        self.user_id = user_id
        self.name = f"User {user_id}"
        self.role = "user"
        self.channels: set[str] = set()
        self.limit = InboundLimit(rate, burst)
        self.rebound: list[Principal] = []

    def subscribe(self, channel: str) -> bool:
        if channel in self.channels:
            return False
        self.channels.add(channel)
        return True

    def unsubscribe(self, channel: str) -> bool:
        if channel not in self.channels:
            return False
        self.channels.discard(channel)
        return True

    def rebind(self, principal: Principal) -> None:
        self.rebound.append(principal)


class FakeAuth:
    """Accepts tokens of the form 'user:<id>' and rejects everything else as revoked."""

    async def authenticate(self, token: str) -> Principal:
        kind, _, user_id = token.partition(":")
        if kind != "user":
            raise AuthenticationError("session revoked")
        return Principal(int(user_id), "N", "user", 2, "s2", 1_900_000_000)


def error_code(outcome: Outcome) -> str:
    """Returns the code of an error reply, asserting the outcome is exactly that reply."""
    assert outcome.close is None and outcome.reply is not None
    assert outcome.reply.type == "error", outcome.reply
    return outcome.reply.data["code"]


@pytest.fixture
def inbound() -> Inbound:
    return Inbound(FakeAuth())


@pytest.mark.gen_test
@pytest.mark.parametrize("message, code", [
    ("{not json", "invalid_json"),
    ("", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('"text"', "invalid_message"),
    ('{"data": {}}', "invalid_message"),
    ('{"type": 5}', "invalid_message"),
    ('{"type": "chat.send"}', "unknown_type"),
    ('{"type": "auth.refresh"}', "invalid_message"),
    ('{"type": "auth.refresh", "data": {"token": ""}}', "invalid_message"),
    ('{"type": "auth.refresh", "data": ["user:7"]}', "invalid_message"),
])
async def test_bad_messages_get_an_error_reply_with_a_code(inbound, message, code):
    """Malformed, unknown or incomplete messages are answered with one error, never a close."""
    peer = FakePeer()
    assert error_code(await inbound.handle(peer, message)) == code
    assert peer.rebound == []


@pytest.mark.gen_test
async def test_unknown_type_names_the_type_cut_to_64_characters(inbound):
    """The unknown_type message quotes the type, so a client sees what it sent, bounded."""
    outcome = await inbound.handle(FakePeer(), json.dumps({"type": "x" * 500}))
    assert error_code(outcome) == "unknown_type"
    text = outcome.reply.data["message"]
    assert "x" * 64 in text and "x" * 65 not in text


@pytest.mark.gen_test
async def test_binary_message_closes_with_1003(inbound):
    """A binary frame is answered by closing with 1003, no reply."""
    assert await inbound.handle(FakePeer(), b"\x00") == Outcome(close=BINARY_UNSUPPORTED)


@pytest.mark.gen_test
async def test_refresh_rebinds_the_peer_and_replies_auth_refreshed(inbound):
    """A valid token of the same user rebinds the connection and replies with the new expiry."""
    peer = FakePeer(7)
    outcome = await inbound.handle(peer, json.dumps({"type": "auth.refresh",
                                                     "data": {"token": "user:7"}}))
    assert outcome.close is None
    assert outcome.reply.type == "auth.refreshed"
    assert outcome.reply.data == {"expires_at": 1_900_000_000}
    assert [p.session_id for p in peer.rebound] == ["s2"]


@pytest.mark.gen_test
@pytest.mark.parametrize("token, detail", [
    ("user:8", "token belongs to another user"),
    ("revoked", "session revoked"),
])
async def test_refresh_with_a_foreign_or_rejected_token_closes_1008(inbound, token, detail):
    """Another user's token or a rejected one closes 1008 "refresh rejected: <why>"."""
    peer = FakePeer(7)
    outcome = await inbound.handle(peer, json.dumps({"type": "auth.refresh",
                                                     "data": {"token": token}}))
    assert outcome.reply is None
    assert outcome.close == REFRESH_REJECTED.detail(detail)
    assert outcome.close.code == 1008 and outcome.close.reason == f"refresh rejected: {detail}"
    assert peer.rebound == []


def test_close_detail_is_cut_to_fit_a_close_frame():
    """A long detail is cut so the reason fits the 123 bytes a close frame allows."""
    close = REFRESH_REJECTED.detail("é" * 200)
    assert len(close.reason.encode()) <= 123 and close.reason.startswith("refresh rejected: ")


class Tally:
    """A recorder that keeps (verb, error code) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def inbound(self, verb: str, error: str | None) -> None:
        self.seen.append((verb, error))


@pytest.mark.gen_test
async def test_recorder_sees_fixed_verb_labels_and_error_codes():
    """Each message is recorded once by its table verb or a fixed word, never client text."""
    tally = Tally()
    inbound = Inbound(FakeAuth(), recorder=tally)
    peer = FakePeer(7)
    for message in ("{bad", json.dumps([1]), json.dumps({"type": "free text 123"}), b"\x00",
                    json.dumps({"type": "auth.refresh", "data": {"token": "user:7"}}),
                    json.dumps({"type": "auth.refresh", "data": {}})):
        await inbound.handle(peer, message)
    assert tally.seen == [("invalid", "invalid_json"), ("invalid", "invalid_message"),
                          ("unknown", "unknown_type"), ("binary", None), ("auth.refresh", None),
                          ("auth.refresh", "invalid_message")]
