"""permessage-deflate on real sockets: the handshake, frames compressed once, interop."""

from __future__ import annotations

import json
import zlib

import pytest
from conftest import next_event
from websockets.asyncio.client import connect as websockets_connect
from wirewatch import RSV1, WireClient, inflate

from hub import deflate
from hub.deflate import THRESHOLD

AGREED = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
OFFER = "permessage-deflate; client_max_window_bits"  # as Chromium, ws and websockets send it
BIG = "big " * 150  # an alert well over the 256-byte threshold
compression_on = pytest.mark.settings(websocket_compression=True)
# The wire format does not depend on the database backend: SQLite only.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


async def broadcast(api, token: str, message: str) -> None:
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": message}, token)
    assert status == 200, body


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_deflate_offer_is_answered_with_no_context_takeover_both_ways(api):
    """The usual client offer gets server_ and client_no_context_takeover in the answer."""
    user = await api.register()
    client = await WireClient.connect(api.ws_url, user["access_token"], extensions=OFFER)
    assert client.extension == AGREED
    client.close()


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_offer_capping_the_server_window_gets_events_deflated_with_a_smaller_one(
        api, monkeypatch):
    """server_max_window_bits=10 is answered with it, and such a socket gets each event
    deflated once more, with a window that fits (a 10-bit inflater reads it), where a
    full-window socket keeps the 15-bit frame."""
    calls: list[int] = []
    real = deflate.deflate_message
    monkeypatch.setattr(deflate, "deflate_message",
                        lambda p, bits=15: calls.append(bits) or real(p, bits))
    admin = await api.admin()
    token = admin["access_token"]
    narrow = [await WireClient.connect(api.ws_url, token, extensions=f"{OFFER}; "
                                       "server_max_window_bits=10") for _ in range(2)]
    full = await WireClient.connect(api.ws_url, token, extensions=OFFER)
    assert narrow[0].extension == ("permessage-deflate; client_no_context_takeover; "
                                   "server_max_window_bits=10; server_no_context_takeover")
    for client in (*narrow, full):
        await client.read_event()  # welcome
    calls.clear()
    await broadcast(api, token, BIG)
    for client in (*narrow, full):
        assert (await client.read_event())["data"]["message"] == BIG
    assert sorted(calls) == [deflate.NARROW_WINDOW_BITS, deflate.WINDOW_BITS]
    (first, payload), (other_first, other) = narrow[0].frames[-1], narrow[1].frames[-1]
    assert first == 0xC1 and (first, payload) == (other_first, other)
    assert payload != full.frames[-1][1]
    inflated = zlib.decompressobj(-10).decompress(payload + b"\x00\x00\xff\xff")
    assert json.loads(inflated)["data"]["message"] == BIG
    for client in (*narrow, full):
        client.close()


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_offer_capping_the_server_window_at_8_bits_gets_an_uncompressed_connection(api):
    """zlib cannot deflate with an 8-bit window: that offer is declined, frames are plain."""
    admin = await api.admin()
    client = await WireClient.connect(api.ws_url, admin["access_token"],
                                      extensions="permessage-deflate; server_max_window_bits=8")
    assert client.extension is None
    await client.read_event()  # welcome
    await broadcast(api, admin["access_token"], BIG)
    event = await client.read_event()
    assert event["data"]["message"] == BIG
    assert client.frames[-1][0] == 0x81  # plain text, RSV1 clear
    client.close()


@sqlite_only
@pytest.mark.gen_test
async def test_compression_off_by_default_ignores_the_offer(api):
    """Without --websocket-compression the offer is not answered and frames are plain."""
    user = await api.register()
    client = await WireClient.connect(api.ws_url, user["access_token"], extensions=OFFER)
    assert client.extension is None
    client.close()


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_large_events_are_compressed_small_ones_and_the_welcome_follow_the_threshold(api):
    """Above 256 bytes a frame has RSV1 and inflates to the JSON; below it is plain text;
    the welcome and replayed events follow the same rule, in order, each once."""
    admin = await api.admin()
    token = admin["access_token"]
    client = await WireClient.connect(api.ws_url, token, extensions=OFFER)
    welcome = await client.read_event()
    first, payload = client.frames[0]
    assert welcome["type"] == "connection.established"
    assert bool(first & RSV1) == (len(inflate(payload) if first & RSV1 else payload) >= THRESHOLD)
    await broadcast(api, token, "small")
    await broadcast(api, token, BIG)
    small, big = await client.read_event(), await client.read_event()
    assert (small["data"]["message"], big["data"]["message"]) == ("small", BIG)
    (small_first, small_raw), (big_first, big_raw) = client.frames[-2:]
    assert small_first == 0x81 and len(small_raw) < THRESHOLD
    assert big_first == 0xC1 and len(big_raw) < len(json.dumps(big)) // 3
    client.close()

    # Missed while away: replayed after the welcome, compressed by the same rule.
    position = f"&since={big['offset']}&epoch={welcome['data']['epoch']}"
    await broadcast(api, token, BIG + "1")
    await broadcast(api, token, "small 2")
    await broadcast(api, token, BIG + "3")
    back = await WireClient.connect(api.ws_url, token, extensions=OFFER, query=position)
    hello = await back.read_event()
    assert hello["data"]["recovered"] is True and hello["data"]["missed"] == 3
    replayed = [await back.read_event() for _ in range(3)]
    assert [e["data"]["message"] for e in replayed] == [BIG + "1", "small 2", BIG + "3"]
    assert [int(e["offset"]) for e in replayed] == [int(big["offset"]) + n for n in (1, 2, 3)]
    assert [f for f, _ in back.frames[1:]] == [0xC1, 0x81, 0xC1]
    back.close()


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_each_event_is_deflated_once_and_the_same_bytes_reach_every_compressing_socket(
        api, monkeypatch):
    """Four compressing sockets and a plain one: one deflate call per event, identical frames."""
    calls: list[bytes] = []
    real = deflate.deflate_message
    monkeypatch.setattr(deflate, "deflate_message",
                        lambda p, *bits: calls.append(p) or real(p, *bits))
    admin = await api.admin()
    token = admin["access_token"]
    squeezed = [await WireClient.connect(api.ws_url, token, extensions=OFFER) for _ in range(4)]
    plain = await WireClient.connect(api.ws_url, token)
    for client in (*squeezed, plain):
        await client.read_event()
    calls.clear()
    await broadcast(api, token, BIG)
    got = [await client.read_event() for client in (*squeezed, plain)]
    assert {e["data"]["message"] for e in got} == {BIG}
    assert len([p for p in calls if BIG.encode() in p]) == 1
    assert len({c.frames[-1] for c in squeezed}) == 1  # the very same bytes
    assert squeezed[0].frames[-1][0] == 0xC1 and plain.frames[-1][0] == 0x81
    for client in (*squeezed, plain):
        client.close()


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_compressed_client_frames_are_inflated(api):
    """A client's RSV1 frame (a publish over the threshold) is inflated and answered."""
    user = await api.register()
    client = await WireClient.connect(api.ws_url, user["access_token"], extensions=OFFER)
    await client.read_event()
    await client.send(json.dumps({"id": 1, "type": "subscribe",
                                  "data": {"channel": "room:lobby"}}).encode(), compress=True)
    assert (await client.read_event(skip=("presence.joined",)))["id"] == 1
    body = {"text": "z" * 800}
    await client.send(json.dumps({"id": 2, "type": "publish", "data": {
        "channel": "room:lobby", "data": body}}).encode(), compress=True)
    message = await client.read_event(skip=("presence.joined",))
    assert message["type"] == "channel.message" and message["data"]["body"] == body
    assert client.frames[-1][0] == 0xC1
    reply = await client.read_event(skip=("presence.joined",))
    assert reply["type"] == "reply" and reply["id"] == 2
    client.close()


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_fragmented_compressed_message_with_a_ping_inside_is_inflated(api):
    """A compressed message split in two frames with a ping between them still inflates."""
    user = await api.register()
    client = await WireClient.connect(api.ws_url, user["access_token"], extensions=OFFER)
    await client.read_event()
    packed = deflate.deflate_message(json.dumps(
        {"id": 3, "type": "presence", "data": {"channel": "room:lobby"}}).encode())
    half = len(packed) // 2
    await client.send_frame(0x41, packed[:half])  # text, RSV1, not final
    await client.send_frame(0x89, b"hi")  # ping between the fragments
    await client.send_frame(0x80, packed[half:])  # final continuation
    reply = await client.read_event()
    assert reply["type"] == "reply" and reply["id"] == 3, reply
    client.close()


@sqlite_only
@pytest.mark.parametrize("server_compression", [pytest.param(True, marks=compression_on), False])
@pytest.mark.gen_test(timeout=30)
async def test_websockets_client_interoperates_with_compression_on_and_off(
        api, server_compression):
    """The websockets client (it offers deflate by default) gets the welcome, small and large
    events, and its compressed publish echoed, whether the server compresses or not."""
    admin = await api.admin()
    token = admin["access_token"]
    async with websockets_connect(f"{api.ws_url}/ws?token={token}") as ws:
        answered = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert answered == (AGREED if server_compression else None)

        async def event(skip=("user.online", "user.offline", "presence.joined")):
            while True:
                got = json.loads(await ws.recv())
                if got["type"] not in skip:
                    return got

        welcome = await event()
        assert welcome["type"] == "connection.established"
        await broadcast(api, token, "small")
        await broadcast(api, token, BIG)
        alerts = [await event() for _ in range(2)]
        assert [a["data"]["message"] for a in alerts] == ["small", BIG]
        await ws.send(json.dumps({"id": 1, "type": "subscribe",
                                  "data": {"channel": "room:lobby"}}))
        assert (await event())["id"] == 1
        body = {"text": "w" * 1000}
        await ws.send(json.dumps({"id": 2, "type": "publish",
                                  "data": {"channel": "room:lobby", "data": body}}))
        echoed = await event()
        assert echoed["type"] == "channel.message" and echoed["data"]["body"] == body
        assert (await event())["id"] == 2
    # Missed while away: the welcome of the resume, then the replay, small and large.
    await broadcast(api, token, BIG + "1")
    await broadcast(api, token, "small 2")
    since = f"&since={alerts[1]['offset']}&epoch={welcome['data']['epoch']}"
    async with websockets_connect(f"{api.ws_url}/ws?token={token}{since}") as ws:
        hello = json.loads(await ws.recv())
        assert (hello["data"]["recovered"], hello["data"]["missed"]) == (True, 2)
        replayed = [json.loads(await ws.recv()) for _ in range(2)]
        assert [r["data"]["message"] for r in replayed] == [BIG + "1", "small 2"]


@sqlite_only
@compression_on
@pytest.mark.gen_test
async def test_tornado_client_negotiates_and_receives_compressed_events(api):
    """Tornado's own client (compression_options={}) inflates the shared frames."""
    admin = await api.admin()
    conn = await api.ws(admin["access_token"], compression_options={})
    assert conn.protocol._compressor is not None
    await broadcast(api, admin["access_token"], BIG)
    assert (await next_event(conn))["data"]["message"] == BIG
    conn.close()
