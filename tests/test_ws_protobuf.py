"""The events.v1.protobuf subprotocol on real sockets, and mixed audiences on one broadcast."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect as websockets_connect
from wirewatch import RSV1, WireClient, inflate

from hub import deflate, protowire
from hub import events_pb2 as pb

PROTOBUF = "events.v1.protobuf"
OFFER = "permessage-deflate; client_max_window_bits"
LOBBY = "room:lobby"
NOISE = ("user.online", "user.offline", "presence.joined", "presence.left")
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def request(**fields) -> bytes:
    return pb.Request(**fields).SerializeToString()


async def broadcast(api, token: str, message: str) -> None:
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": message}, token)
    assert status == 200, body


@sqlite_only
@pytest.mark.gen_test
async def test_protobuf_client_gets_binary_welcome_replies_and_room_events(api):
    """A protobuf socket's welcome, subscribe/publish/presence/history replies, the echoed
    channel.message and typing all arrive as binary Event messages with their payloads."""
    ann, bob = await api.register(name="Ann"), await api.register(name="Bob")
    client = await WireClient.connect(api.ws_url, ann["access_token"], protocol=PROTOBUF)
    assert client.headers["Sec-WebSocket-Protocol"] == PROTOBUF
    welcome = await client.read_pb()
    assert client.frames[0][0] == 0x82  # binary
    assert welcome.type == "connection.established"
    assert welcome.welcome.user_id == ann["user"]["id"] and welcome.welcome.epoch

    await client.send(request(id=1, subscribe=pb.Subscribe(channel=LOBBY)), opcode=0x2)
    reply = await client.read_pb(skip=NOISE)
    assert (reply.type, reply.id, reply.reply.channel, reply.reply.subscribed) == (
        "reply", 1, LOBBY, True)
    assert reply.reply.HasField("missed") and reply.reply.offset

    await client.send(request(id=2, publish=pb.Publish(channel=LOBBY,
                                                       data_json='{"text": "hi"}')), opcode=0x2)
    message = await client.read_pb(skip=NOISE)
    assert message.type == "channel.message" and message.channel == LOBBY and message.offset
    assert json.loads(message.channel_message.body_json) == {"text": "hi"}
    assert message.channel_message.HasField("from")
    assert getattr(message.channel_message, "from").name == "Ann"
    published = await client.read_pb(skip=NOISE)
    assert published.id == 2 and published.reply.offset == message.offset

    await client.send(request(id=3, presence=pb.ChannelRef(channel=LOBBY)), opcode=0x2)
    members = (await client.read_pb(skip=NOISE)).reply.members
    assert [(m.user_id, m.connections) for m in members] == [(ann["user"]["id"], 1)]

    await client.send(request(id=4, history=pb.History(channel=LOBBY, limit=5)), opcode=0x2)
    history = (await client.read_pb(skip=NOISE)).reply.messages
    assert history[0].id == message.channel_message.id and history[0].offset == message.offset

    other = await WireClient.connect(api.ws_url, bob["access_token"])  # JSON, the default
    await other.read_event()
    await other.send(json.dumps({"type": "subscribe", "data": {"channel": LOBBY}}).encode())
    assert (await other.read_event(skip=NOISE))["type"] == "reply"
    await other.send(json.dumps({"type": "typing",
                                 "data": {"channel": LOBBY, "active": True}}).encode())
    typing = await client.read_pb(skip=NOISE)
    assert (typing.type, typing.typing.name, typing.typing.active) == ("typing", "Bob", True)

    await client.send(request(id=5, unsubscribe=pb.ChannelRef(channel=LOBBY)), opcode=0x2)
    left = await client.read_pb(skip=NOISE)
    assert left.id == 5 and left.reply.HasField("subscribed") and not left.reply.subscribed
    client.close()
    other.close()


@sqlite_only
@pytest.mark.gen_test
async def test_protobuf_errors_are_binary_error_events_with_the_request_id(api):
    """Garbage bytes, a verb-less Request and a refused request each get a binary error."""
    user = await api.register()
    client = await WireClient.connect(api.ws_url, user["access_token"], protocol=PROTOBUF)
    await client.read_pb()
    await client.send(b"\xff\xfe\xfd", opcode=0x2)
    garbage = await client.read_pb()
    assert (garbage.type, garbage.error.code) == ("error", "invalid_message")
    await client.send(request(id=9), opcode=0x2)
    assert (await client.read_pb()).error.code == "invalid_message"
    await client.send(request(id=10, subscribe=pb.Subscribe(channel="room:nope")), opcode=0x2)
    missing = await client.read_pb()
    assert (missing.id, missing.error.code) == (10, "unknown_channel")
    await client.send(request(id=11, publish=pb.Publish(channel=LOBBY, data_json="{nope")),
                      opcode=0x2)
    bad_json = await client.read_pb()
    assert (bad_json.id, bad_json.error.code) == (11, "invalid_json")
    await client.send(request(id=12, auth_refresh=pb.AuthRefresh(token=user["access_token"])),
                      opcode=0x2)
    refreshed = await client.read_pb()
    assert refreshed.id == 12 and refreshed.auth_refreshed.expires_at > 0
    # Text frames still carry JSON requests; the answer is in the connection's format.
    await client.send(json.dumps({"id": 13, "type": "presence",
                                  "data": {"channel": LOBBY}}).encode())
    assert (await client.read_pb()).id == 13 and client.frames[-1][0] == 0x82
    client.close()


@sqlite_only
@pytest.mark.gen_test
async def test_json_subprotocol_and_binary_on_a_json_socket(api):
    """events.v1.json is selected and is JSON text; a binary frame there still closes 1003."""
    user = await api.register()
    client = await WireClient.connect(api.ws_url, user["access_token"],
                                      protocol="events.v1.json")
    assert client.headers["Sec-WebSocket-Protocol"] == "events.v1.json"
    assert (await client.read_event())["type"] == "connection.established"
    assert client.frames[0][0] == 0x81
    await client.send(request(id=1, presence=pb.ChannelRef(channel=LOBBY)), opcode=0x2)
    head = await client.stream.read_bytes(4)
    assert head[0] == 0x88 and int.from_bytes(head[2:4], "big") == 1003
    client.close()


@sqlite_only
@pytest.mark.settings(websocket_compression=True)
@pytest.mark.gen_test(timeout=60)
async def test_mixed_audience_each_gets_its_format_once_per_event_encoded_once_per_variant(
        api, monkeypatch):
    """JSON and protobuf sockets, compressed and not, on one stream of broadcasts: each socket
    receives every event once, in order, in its own format; each event is serialised once per
    format and deflated once per compressed format."""
    encodes: list[str] = []
    deflates: list[bytes] = []
    real_encode, real_deflate = protowire.encode_event, deflate.deflate_message
    monkeypatch.setattr(protowire, "encode_event",
                        lambda *a: encodes.append(a[0]) or real_encode(*a))
    monkeypatch.setattr(deflate, "deflate_message",
                        lambda p, *bits: deflates.append(p) or real_deflate(p, *bits))
    admin = await api.admin()
    token = admin["access_token"]
    kinds = {"json": {}, "json+deflate": {"extensions": OFFER},
             "protobuf": {"protocol": PROTOBUF},
             "protobuf+deflate": {"protocol": PROTOBUF, "extensions": OFFER}}
    clients = {kind: [await WireClient.connect(api.ws_url, token, **opts) for _ in range(3)]
               for kind, opts in kinds.items()}
    for kind, group in clients.items():
        for client in group:
            await (client.read_pb() if "protobuf" in kind else client.read_event())
    count = 20
    texts = [f"{n:04d} " + ("payload " * (60 if n % 2 else 1)) for n in range(count)]
    encodes.clear()
    deflates.clear()
    for text in texts:
        await broadcast(api, token, text)
    for kind, group in clients.items():
        binary, squeezed = "protobuf" in kind, "deflate" in kind
        for client in group:
            got, firsts = [], []
            while len(got) < count:
                first, payload = await client.read_frame()
                raw = inflate(payload) if first & RSV1 else payload
                if binary:
                    event = pb.Event.FromString(raw)
                    type_, text = event.type, event.system_alert.message
                else:
                    event = json.loads(raw)
                    type_, text = event["type"], event["data"].get("message")
                if type_ == "system.alert":
                    got.append(text)
                    firsts.append(first)
            assert got == texts, kind  # every event, once, in order: no gap, no duplicate
            assert all((f & 0x0F) == (0x2 if binary else 0x1) for f in firsts), kind
            compressed = [bool(f & RSV1) for f in firsts]
            assert compressed == [squeezed and n % 2 == 1 for n in range(count)], kind
    alerts = [t for t in encodes if t == "system.alert"]
    assert len(alerts) == count  # one protobuf encoding per event, not per socket
    assert len([p for p in deflates if b"payload payload" in p]) == 2 * (count // 2)
    for group in clients.values():
        for client in group:
            client.close()


@sqlite_only
@pytest.mark.settings(websocket_compression=True)
@pytest.mark.gen_test(timeout=30)
async def test_websockets_client_speaks_protobuf_with_deflate(api):
    """The websockets client selecting events.v1.protobuf gets binary Events, compressed
    above the threshold, and its binary requests are answered."""
    admin = await api.admin()
    token = admin["access_token"]
    async with websockets_connect(f"{api.ws_url}/ws?token={token}",
                                  subprotocols=[PROTOBUF]) as ws:
        assert ws.subprotocol == PROTOBUF

        async def event() -> pb.Event:
            while True:
                got = pb.Event()
                raw = await ws.recv()
                assert isinstance(raw, bytes)
                got.ParseFromString(raw)
                if got.type not in NOISE:
                    return got

        assert (await event()).welcome.user_id == admin["user"]["id"]
        await broadcast(api, token, "x" * 2000)
        assert (await event()).system_alert.message == "x" * 2000
        await ws.send(request(id=7, subscribe=pb.Subscribe(channel=LOBBY)))
        assert (await event()).reply.subscribed
