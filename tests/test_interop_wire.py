"""Chromium and Node `ws` against permessage-deflate and events.v1.protobuf, on and off."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from test_browser import chromium, run_node, sqlite_only
from tornado import websocket as tornado_websocket

from hub import events_pb2 as pb

AGREED = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
PROTOBUF = "events.v1.protobuf"
BIG = "chromium " * 100
compression_on = pytest.mark.settings(websocket_compression=True)

OPEN_JS = """async ({url, protocols}) => {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  window.got = [];
  ws.onmessage = (e) => window.got.push(typeof e.data === 'string' ? {text: e.data}
      : {b64: btoa(String.fromCharCode(...new Uint8Array(e.data)))});
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  window.ws = ws;
  return {extensions: ws.extensions, protocol: ws.protocol};
}"""


@pytest.fixture
def inflated(monkeypatch) -> list[int]:
    """Records the size of every client message the server inflated."""
    sizes: list[int] = []
    real = tornado_websocket._PerMessageDeflateDecompressor.decompress

    def decompress(self, data: bytes) -> bytes:
        out = real(self, data)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(tornado_websocket._PerMessageDeflateDecompressor, "decompress",
                        decompress)
    return sizes


async def broadcast(api, token: str, message: str) -> None:
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": message}, token)
    assert status == 200, body


async def received(page: Any, count: int, protobuf: bool) -> list[dict[str, Any]]:
    """Waits until the page holds count messages; returns them decoded (noise skipped)."""
    for _ in range(500):
        raw = await page.evaluate("window.got")
        events = [_decode(m, protobuf) for m in raw]
        events = [e for e in events if e["type"] not in ("user.online", "user.offline",
                                                         "presence.joined")]
        if len(events) >= count:
            return events
        await asyncio.sleep(0.02)
    raise AssertionError(f"page got {events}")


def _decode(message: dict[str, str], protobuf: bool) -> dict[str, Any]:
    if not protobuf:
        assert "text" in message, message
        return json.loads(message["text"])
    assert "b64" in message, message
    event = pb.Event.FromString(base64.b64decode(message["b64"]))
    which = event.WhichOneof("data")
    return {"type": event.type, "id": event.id, "payload": getattr(event, which),
            "offset": event.offset if event.HasField("offset") else None}


@sqlite_only
@pytest.mark.parametrize("protobuf", [False, True])
@pytest.mark.parametrize("server_compression", [pytest.param(True, marks=compression_on), False])
@pytest.mark.gen_test(timeout=90)
async def test_chromium_receives_and_sends_in_every_variant(api, inflated, protobuf,
                                                            server_compression):
    """Chromium negotiates no-context-takeover deflate when the server offers it, gets the
    welcome, small and large events and replies in JSON or protobuf, and its compressed
    publish is inflated by the server."""
    admin = await api.admin()
    token = admin["access_token"]
    async with chromium() as context:
        page = await context.new_page()
        await page.goto(api.base_url + "/test")
        opened = await page.evaluate(OPEN_JS, {"url": f"{api.ws_url}/ws?token={token}",
                                               "protocols": [PROTOBUF] if protobuf else []})
        assert opened["extensions"] == (AGREED if server_compression else "")
        assert opened["protocol"] == (PROTOBUF if protobuf else "")
        await broadcast(api, token, "small")
        await broadcast(api, token, BIG)
        body = {"text": "c" * 1200}
        if protobuf:
            raw = [pb.Request(id=1, subscribe=pb.Subscribe(channel="room:lobby")),
                   pb.Request(id=2, publish=pb.Publish(channel="room:lobby",
                                                       data_json=json.dumps(body)))]
            for request in raw:
                await page.evaluate("(b) => window.ws.send(Uint8Array.from(atob(b), "
                                    "(c) => c.charCodeAt(0)))",
                                    base64.b64encode(request.SerializeToString()).decode())
        else:
            for request in ({"id": 1, "type": "subscribe", "data": {"channel": "room:lobby"}},
                            {"id": 2, "type": "publish",
                             "data": {"channel": "room:lobby", "data": body}}):
                await page.evaluate("(t) => window.ws.send(t)", json.dumps(request))
        events = await received(page, 6, protobuf)
        # Away and back: the welcome says what was missed and the replay follows it.
        epoch = (events[0]["payload"].epoch if protobuf else events[0]["data"]["epoch"])
        since = events[2]["offset"]
        await page.evaluate("window.ws.close()")
        await broadcast(api, token, BIG + "again")
        await broadcast(api, token, "small again")
        await page.evaluate(OPEN_JS, {
            "url": f"{api.ws_url}/ws?token={token}&since={since}&epoch={epoch}",
            "protocols": [PROTOBUF] if protobuf else []})
        back = await received(page, 3, protobuf)
    welcome = back[0]["payload"] if protobuf else back[0]["data"]
    answer = ((welcome.recovered, welcome.missed) if protobuf
              else (welcome["recovered"], welcome["missed"]))
    assert back[0]["type"] == "connection.established" and answer == (True, 2)
    replayed = [(e["payload"].message if protobuf else e["data"]["message"]) for e in back[1:3]]
    assert replayed == [BIG + "again", "small again"]
    assert [e["offset"] for e in back[1:3]] == [str(int(since) + 1), str(int(since) + 2)]
    assert [e["type"] for e in events] == ["connection.established", "system.alert",
                                           "system.alert", "reply", "channel.message", "reply"]
    if protobuf:
        assert [e["payload"].message for e in events[1:3]] == ["small", BIG]
        assert json.loads(events[4]["payload"].body_json) == body
        assert [events[3]["id"], events[5]["id"]] == [1, 2]
    else:
        assert [e["data"]["message"] for e in events[1:3]] == ["small", BIG]
        assert events[4]["data"]["body"] == body
        assert [events[3]["id"], events[5]["id"]] == [1, 2]
    if server_compression:  # Chromium deflates what it sends: the publish was inflated
        assert any(size > 1200 for size in inflated)
    else:
        assert inflated == []


@sqlite_only
@pytest.mark.parametrize("protobuf", [False, True])
@pytest.mark.parametrize("server_compression", [pytest.param(True, marks=compression_on), False])
@pytest.mark.gen_test(timeout=90)
async def test_node_ws_script_in_every_variant(api, inflated, protobuf, server_compression):
    """The Node script (ws, and protobufjs with --protobuf) negotiates deflate when offered,
    prints the welcome, a small and a large broadcast, and its large publish echoed."""
    admin = await api.admin()
    token = admin["access_token"]
    body = {"text": "n" * 1500}
    args = ["--seconds", "4", "--subscribe", "room:lobby", "--publish", json.dumps(body)]
    running = asyncio.ensure_future(run_node(*args, *(["--protobuf"] if protobuf else []),
                                             env={"TOKEN": token, "WS_URL": api.ws_url + "/ws"}))
    for _ in range(300):
        if api.ctx.hub.user_connection_count(admin["user"]["id"]):
            break
        await asyncio.sleep(0.02)
    await broadcast(api, token, "small")
    await broadcast(api, token, BIG)
    code, out, err = await running
    assert code == 0, err + out
    assert (f"Extensions: {AGREED}" in out) == server_compression, out
    assert (f"Subprotocol: {PROTOBUF}" in out) == protobuf, out
    blocks = [json.JSONDecoder().raw_decode(b)[0]
              for b in out.split("📨 Message received:\n")[1:]]
    welcome = blocks[0]
    assert welcome["type"] == "connection.established"
    assert welcome["data"]["user_id"] == admin["user"]["id"]
    assert welcome["data"]["recovered"] is False and welcome["data"]["missed"] == 0
    alerts = [b["data"]["message"] for b in blocks if b["type"] == "system.alert"]
    assert alerts == ["small", BIG]
    echoed = [b for b in blocks if b["type"] == "channel.message"]
    assert len(echoed) == 1 and echoed[0]["data"]["body"] == body
    assert echoed[0]["channel"] == "room:lobby" and echoed[0]["offset"]
    replies = [b for b in blocks if b["type"] == "reply"]
    assert [r["data"]["channel"] for r in replies] == ["room:lobby", "room:lobby"]
    if server_compression:  # ws deflates messages from 1 KiB: the publish was inflated
        assert any(size > 1500 for size in inflated)
