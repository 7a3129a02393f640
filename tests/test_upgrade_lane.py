"""The upgrade lane (handlers/upgrade.py): /ws handshakes it serves, and everything it hands
back to Tornado answered exactly as Tornado alone answers it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging

import pytest
import tornado.testing
from test_metrics import value

from edge.server import EdgeServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _head(token: str, *, path: str = "/ws", version: str = "HTTP/1.1", eol: str = "\r\n",
          method: str = "GET", extra: str = "", key: str = "dGhlIHNhbXBsZSBub25jZQ==",
          upgrade: str = "websocket", connection: str = "Upgrade", ws_version: str = "13") -> bytes:
    lines = [f"{method} {path}?token={token} {version}", "Host: 127.0.0.1",
             f"Upgrade: {upgrade}", f"Connection: {connection}", f"Sec-WebSocket-Key: {key}",
             f"Sec-WebSocket-Version: {ws_version}"]
    text = eol.join(lines) + eol + (extra.replace("\r\n", eol) if extra else "") + eol
    return text.encode("latin-1")


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Reads one unmasked server frame: (opcode, payload)."""
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    return b0 & 0x0F, await reader.readexactly(length)


async def _exchange(port: int, data: bytes, read_frame: bool = False) -> tuple[bytes, bytes]:
    """Sends data on a new connection; returns the response head and (optionally) the first
    frame's payload, or what came before the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except asyncio.IncompleteReadError as exc:
            return exc.partial, b""
        payload = b""
        if read_frame and head.startswith(b"HTTP/1.1 101"):
            _, payload = await _frame(reader)
        return head, payload
    finally:
        writer.close()


@pytest.fixture
def plain_port(app, ctx, io_loop):
    """The same application behind an EdgeServer without the lane (Tornado alone)."""
    sock, port = tornado.testing.bind_unused_port()
    server = EdgeServer(app, settings=ctx.settings)
    server.add_socket(sock)
    yield port
    server.stop()


@pytest.mark.gen_test
async def test_an_upgrade_takes_the_lane_and_a_pipelined_frame_is_answered(api, http_server,
                                                                           http_port):
    """A well-formed /ws upgrade is served by the lane: 101 with the right accept value, the
    welcome, and a ping sent right behind the head (before the 101 came) gets its pong."""
    token = (await api.register())["access_token"]
    lane = http_server.lane
    before = lane.upgraded, lane.handed_back
    mask = b"\x01\x02\x03\x04"
    ping = bytes([0x89, 0x84]) + mask + bytes(a ^ b for a, b in zip(b"abcd", mask, strict=True))
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(_head(token) + ping)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    accept = base64.b64encode(hashlib.sha1(
        ("dGhlIHNhbXBsZSBub25jZQ==" + GUID).encode()).digest()).decode()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert f"Sec-WebSocket-Accept: {accept}\r\n".encode() in head
    frames = [await _frame(reader), await _frame(reader)]
    writer.close()
    kinds = sorted(opcode for opcode, _ in frames)
    assert kinds == [0x1, 0xA], frames  # the welcome (text) and the pong
    welcome = next(json.loads(p) for o, p in frames if o == 0x1)
    assert welcome["type"] == "connection.established"
    assert dict(frames)[0xA] == b"abcd"
    assert (lane.upgraded, lane.handed_back) == (before[0] + 1, before[1])


@pytest.mark.gen_test
async def test_other_requests_are_handed_back_and_kept_alive(api, http_server, http_port):
    """A REST request on a new connection goes to Tornado from its first byte; a second request
    on the same connection is served too (keep-alive), and /ws/stats is not mistaken for /ws."""
    lane = http_server.lane
    before = lane.handed_back
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
    writer.close()
    head, _ = await _exchange(http_port, b"GET /ws/stats HTTP/1.1\r\nHost: t\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head  # the admin stats route, not an upgrade
    assert lane.handed_back == before + 2 and lane.upgraded == 0


@pytest.mark.gen_test
async def test_unusual_heads_are_answered_exactly_as_tornado_alone_answers(api, http_server,
                                                                           http_port, plain_port):
    """Each head the lane does not take is handed to Tornado and answered with the same status
    line as by a server without the lane; a well-formed one is upgraded by both."""
    token = (await api.register())["access_token"]
    variants = {
        "well-formed": _head(token),
        "bare LF line ends": _head(token, eol="\n"),
        "HTTP/1.0": _head(token, version="HTTP/1.0"),
        "a body": _head(token, extra="Content-Length: 2\r\n") + b"hi",
        "no Upgrade in Connection": _head(token, connection="keep-alive"),
        "Upgrade to something else": _head(token, upgrade="h2c"),
        "WebSocket version 8": _head(token, ws_version="8"),
        "no key": _head(token, key=""),
        "a repeated field": _head(token, extra="X-Trace: 1\r\nX-Trace: 2\r\n"),
        "a folded line": _head(token, extra="X-Trace: 1\r\n  more\r\n"),
        "a control character": _head(token, extra="X-Trace: a\x01b\r\n"),
        "cross-site without Origin": _head(token, extra="Sec-Fetch-Site: cross-site\r\n"),
        "a bad token": _head("not-a-token"),
        "an invalid Host": _head(token).replace(b"Host: 127.0.0.1", b"Host: a b"),
        "no Host": _head(token).replace(b"Host: 127.0.0.1\r\n", b""),
        "another path": _head(token, path="/wsx"),
        "lower-case method": _head(token, method="get"),
        "a non-ASCII target": _head(token + "\xe9"),
        "a DEL in the target": _head(token + "\x7f"),
        "two spaces before the version": _head(token, version=" HTTP/1.1"),
        "a tab before the version": _head(token, version="\tHTTP/1.1"),
        "spaces inside and after a value": _head(token, extra="X-Trace: a  b\t c \t\r\n"),
        "obs-text and an empty value": _head(token, extra="X-Note: caf\xe9\r\nX-Empty:\r\n"),
        "more query arguments than the lane parses": _head(
            token + "".join(f"&a{i}=1" for i in range(120))),
    }
    taken = {"well-formed", "spaces inside and after a value", "obs-text and an empty value"}
    lane = http_server.lane
    codes = set()
    for name, data in variants.items():
        before = lane.upgraded, lane.handed_back
        ours, welcome = await _exchange(http_port, data, read_frame=True)
        theirs, _ = await _exchange(plain_port, data)
        assert ours.split(b"\r\n")[0] == theirs.split(b"\r\n")[0], (name, ours, theirs)
        codes.add(ours[9:12])
        if name in taken:
            assert ours.startswith(b"HTTP/1.1 101") and lane.upgraded == before[0] + 1, name
            assert json.loads(welcome)["type"] == "connection.established"
        else:  # Tornado's answer, whatever it is (it upgrades bare-LF and HTTP/1.0 heads)
            assert lane.handed_back == before[1] + 1, name
    assert codes == {b"101", b"400", b"401", b"403", b"404", b"405", b"426"}


@pytest.mark.gen_test
async def test_a_refusal_found_in_the_lane_is_answered_and_counted_once(api, http_port):
    """A bad token refused in the lane gets the usual 401 error envelope, one access-log
    request and one handshake failure; a per-user limit keeps its own reason."""
    head, _ = await _exchange(http_port, _head("not-a-token"))
    assert head.startswith(b"HTTP/1.1 401"), head
    assert value(api, "events_handshake_failures_total", reason="unauthorized") == 1
    assert value(api, "events_http_requests_total", route="/ws", method="GET",
                 status="401") == 1


@pytest.mark.gen_test
@pytest.mark.settings(max_connections_per_user=1)
async def test_the_per_user_limit_is_refused_with_its_own_reason_through_the_lane(api):
    """The second socket of a user limited to one is refused 429 and counted as
    too_many_connections (the reason travels with the refusal handed to Tornado)."""
    token = (await api.register())["access_token"]
    conn = await api.ws(token)
    head, _ = await _exchange(int(api.base_url.rsplit(":", 1)[1]), _head(token))
    assert head.startswith(b"HTTP/1.1 429"), head
    assert value(api, "events_handshake_failures_total", reason="too_many_connections") == 1
    assert value(api, "events_handshake_failures_total", reason="rate_limited") == 0
    conn.close()


@pytest.mark.gen_test
async def test_heads_arriving_in_pieces_and_clients_leaving_early(api, http_server, http_port):
    """A head sent a few bytes at a time is still upgraded by the lane; a client that sends
    its head and leaves at once leaves no socket registered and no lane task behind."""
    user = await api.register()
    token = user["access_token"]
    data = _head(token)
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    for i in range(0, len(data), 7):
        writer.write(data[i:i + 7])
        await writer.drain()
        await asyncio.sleep(0.005)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.close()
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", http_port)
        writer.write(_head(token))
        writer.close()
    admin = await api.admin()
    watcher = await api.ws(admin["access_token"])  # upgraded: an open socket holds no task
    for _ in range(100):
        await asyncio.sleep(0.05)
        if (not api.ctx.hub.user_connection_count(user["user"]["id"])
                and not http_server.lane._tasks):
            break
    assert api.ctx.hub.user_connection_count(user["user"]["id"]) == 0
    assert not http_server.lane._tasks
    assert api.ctx.hub.user_connection_count(admin["user"]["id"]) == 1
    watcher.close()


@pytest.mark.gen_test
async def test_a_head_longer_than_one_read_is_upgraded_and_the_stream_keeps_its_chunk(
        api, http_server, http_port):
    """The lane reads a head in 4 KiB recv()s: a 20 KiB head (a large cookie) still takes the
    lane, a ping pipelined behind it is answered, and the stream reads frames with its own
    chunk size again once the head is in."""
    token = (await api.register())["access_token"]
    before = http_server.lane.upgraded
    mask = b"\x01\x02\x03\x04"
    ping = bytes([0x89, 0x84]) + mask + bytes(a ^ b for a, b in zip(b"abcd", mask, strict=True))
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(_head(token, extra=f"Cookie: c={'y' * 20_000}\r\n") + ping)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    frames = dict([await _frame(reader), await _frame(reader)])
    assert json.loads(frames[0x1])["type"] == "connection.established"
    assert frames[0xA] == b"abcd"
    assert http_server.lane.upgraded == before + 1
    (client,) = api.ctx.hub.clients.values()
    assert client.conn.ws_connection.stream.read_chunk_size == 65536  # IOStream's default
    writer.close()


@pytest.mark.gen_test
async def test_a_fault_in_the_lane_is_logged_and_the_client_let_go(api, http_server, http_port,
                                                                  monkeypatch, caplog):
    """An unexpected error while the lane reads a head closes that connection and logs the
    error with its traceback; the server goes on serving."""
    def broken(*args):
        raise RuntimeError("lane fault")

    monkeypatch.setattr(http_server.lane, "_upgrade_request", broken)
    with caplog.at_level(logging.ERROR, logger="server"):
        head, _ = await _exchange(http_port, _head("whatever"))
    assert head == b""  # closed without an answer
    assert any("upgrade lane" in r.getMessage() and r.exc_info for r in caplog.records)
    monkeypatch.undo()
    token = (await api.register())["access_token"]
    head, _ = await _exchange(http_port, _head(token))
    assert head.startswith(b"HTTP/1.1 101"), head


@pytest.mark.gen_test(timeout=20)
@pytest.mark.settings(header_timeout=0.5)
async def test_a_head_that_never_ends_is_closed_after_the_header_timeout(api, http_port,
                                                                         http_server):
    """A client that sends part of a head, or nothing, is let go after --header-timeout (the
    lane sets its timer only when the head has not come with the connection); a whole head
    is still upgraded."""
    user = await api.register()
    partial = _head(user["access_token"])[:-4]  # without the blank line that ends it
    began = asyncio.get_running_loop().time()
    clients = [await asyncio.open_connection("127.0.0.1", http_port) for _ in range(2)]
    clients[0][1].write(partial)
    for reader, _ in clients:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    assert 0.4 < asyncio.get_running_loop().time() - began < 4
    assert http_server.lane.upgraded == 0
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(_head(user["access_token"]))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101") and http_server.lane.upgraded == 1
    writer.close()
