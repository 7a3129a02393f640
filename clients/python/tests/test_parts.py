"""The client's parts on their own: backoff, token timing, URLs, stream positions and the
protobuf codec (no server needed)."""

from __future__ import annotations

import base64
import json
import time

import pytest

import events_client
from events_client import events_pb2 as pb
from events_client.backoff import Backoff
from events_client.protobuf import decode_event, encode_request
from events_client.rest import token_claims
from events_client.streams import Report, Stream, Streams
from events_client.tokens import TokenKeeper
from events_client.urls import http_base, ws_url


def jwt(**claims: object) -> str:
    """Returns an unsigned token with these claims (the client never verifies)."""
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.signature"


def test_backoff_is_full_jitter_under_a_growing_bounded_ceiling():
    """Delays lie in [0, min(maximum, initial * factor^n)]: 0.5, 1, 2, ... capped at 30."""
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(3, rng=lambda: 0.0) == 0.0
    assert backoff.delay(3, rng=lambda: 0.999) == pytest.approx(4 * 0.999)
    assert backoff.ceiling(10_000) == 30  # no overflow after days of retrying
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)


@pytest.mark.anyio
async def test_token_is_renewed_a_third_of_its_lifetime_early_at_most_a_minute():
    """A given token: at exp - lifetime/3, at most 60 s early; a fetched one: counted from
    when it arrived (the local clock may differ from the server's); no exp, no schedule."""
    now = time.time()
    keeper = TokenKeeper("http://h", jwt(iat=now - 1, exp=now + 2),
                         get_token=lambda: jwt(iat=now + 500, exp=now + 1400))
    assert keeper.refresh_in() == pytest.approx(1, abs=0.1)
    assert keeper.refresh_in(jwt(iat=now, exp=now + 900)) == pytest.approx(840, abs=0.1)
    assert keeper.refresh_in("opaque") is None and token_claims("a.!!!.c") == {}
    assert not keeper.due()
    assert await keeper.renew(stale=keeper.access_token) and keeper.renewals == 1
    assert keeper.refresh_in() == pytest.approx(840, abs=0.1)  # not 500 s in the future


def test_urls_derive_from_the_base_url():
    """http(s) and ws(s) base URLs, with a path prefix, give the REST base and the socket."""
    assert http_base("http://h:8080/") == "http://h:8080"
    assert http_base("wss://example.com/events/ws") == "https://example.com/events"
    assert ws_url("https://example.com/events", {"since": "5", "epoch": "e"}) == \
        "wss://example.com/events/ws?since=5&epoch=e"
    with pytest.raises(ValueError):
        http_base("ftp://h")


def test_a_resume_replays_then_jumps_to_the_head_and_drops_repeats():
    """An event at or before the position right after an answer is a duplicate; recovered
    with 2 missed, the position moves to the head after the second; later a lower offset
    (the stream restarted under a new epoch) passes."""
    stream = Stream()
    stream.answer({"epoch": "e", "offset": "10", "recovered": False, "missed": 0})
    assert stream.accept("10") is False and stream.accept("11") is True
    assert stream.resume() == {"since": "11", "epoch": "e"}
    stream.answer({"epoch": "e", "offset": "20", "recovered": True, "missed": 2})
    assert stream.accept("11") is False  # a repeat counts towards the replay, and is dropped
    assert stream.accept("12") is True and stream.offset == "20" and stream.replay_left == 0
    assert stream.accept("21") is True and stream.accept("1") is True
    assert stream.offset == "1"


def test_an_interrupted_replay_resumes_from_the_last_event_received():
    """A drop in the middle of a replay leaves the position at the last replayed event."""
    streams = Streams()
    streams.feed.answer({"epoch": "e", "offset": "3", "recovered": False, "missed": 0})
    streams.feed.answer({"epoch": "e", "offset": "9", "recovered": True, "missed": 6})
    assert streams.feed.accept("4") and streams.replaying()
    streams.interrupted()
    assert not streams.replaying() and streams.feed.resume() == {"since": "4", "epoch": "e"}


def test_a_report_waits_for_every_stream_and_keeps_answers_across_a_drop():
    """The recovery event comes once every expected stream answered; an unrecovered answer
    from a socket that dropped is not forgotten by the next one's report."""
    streams = Streams()
    report = Report()
    report.expect([None, "room:a"])
    report.answered(None, {"recovered": True, "missed": 2})
    report.answered("room:a", {"recovered": False, "missed": 0})
    report.expect([None, "room:a"])  # the socket dropped: the next welcome starts over
    report.answered(None, {"recovered": True, "missed": 1})
    assert not report.complete(streams)
    report.answered("room:a", {"recovered": True, "missed": 4})
    assert report.complete(streams)
    assert report.event().data["streams"] == [
        {"channel": None, "recovered": True, "missed": 3},
        {"channel": "room:a", "recovered": False, "missed": 4}]


def test_protobuf_events_decode_to_the_json_shape():
    """A welcome keeps its false/zero fields, a message's body_json becomes body, a reply
    keeps only the fields its verb set, and an unknown type's data_json is parsed."""
    welcome = pb.Event(type="connection.established", timestamp="t", welcome=pb.Welcome(
        client_id="c", role="user", user_id=7, epoch="e", offset="0"))
    assert decode_event(welcome.SerializeToString())["data"] == {
        "client_id": "c", "message": "", "role": "user", "user_id": 7, "epoch": "e",
        "offset": "0", "recovered": False, "missed": 0}
    message = pb.Event(type="channel.message", timestamp="t", channel="room:a", offset="4",
                       channel_message=pb.ChannelMessage(
                           id="m", body_json='{"x": [1]}', sent_at="s",
                           **{"from": pb.UserRef(user_id=1, name="Ann")}))
    assert decode_event(message.SerializeToString()) == {
        "type": "channel.message", "timestamp": "t", "channel": "room:a", "offset": "4",
        "data": {"id": "m", "from": {"user_id": 1, "name": "Ann"}, "body": {"x": [1]},
                 "sent_at": "s"}}
    reply = pb.Event(type="reply", timestamp="t", id=3,
                     reply=pb.Reply(channel="room:a", subscribed=False))
    assert decode_event(reply.SerializeToString())["data"] == {"channel": "room:a",
                                                               "subscribed": False}
    custom = pb.Event(type="order.shipped", timestamp="t", data_json='{"order": 9}')
    assert decode_event(custom.SerializeToString())["data"] == {"order": 9}


def test_protobuf_requests_carry_each_verbs_fields():
    """subscribe keeps since/epoch only when given; publish carries its body as JSON text."""
    plain = pb.Request.FromString(encode_request(1, "subscribe", {"channel": "room:a"}))
    assert plain.id == 1 and not plain.subscribe.HasField("since")
    resumed = pb.Request.FromString(
        encode_request(2, "subscribe", {"channel": "room:a", "since": "5", "epoch": "e"}))
    assert (resumed.subscribe.since, resumed.subscribe.epoch) == ("5", "e")
    published = pb.Request.FromString(
        encode_request(None, "publish", {"channel": "room:a", "data": {"t": "é"}}))
    assert not published.HasField("id") and json.loads(published.publish.data_json) == {"t": "é"}


def test_public_names_are_exported():
    """Everything the docs name is importable from events_client itself."""
    for name in ("login", "register", "refresh", "logout", "connect", "Client", "Event",
                 "Tokens", "Subscription", "Backoff", "RequestError", "Revoked", "AuthError",
                 "ConnectError", "ConnectionLost", "RequestTimeout", "EventsClientError"):
        assert name in events_client.__all__ and hasattr(events_client, name)
    assert events_client.__version__ == "0.1.0"
    assert issubclass(events_client.RequestTimeout, TimeoutError)
