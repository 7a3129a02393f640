"""A closed connection leaves no reference cycle: its objects are freed as it closes.

Left in a cycle, a closed socket's handler, request, stream and protocol wait for a full
collection, which walks every live object with the event loop held (35-80 ms at 2,000
sockets). Each way a connection ends is counted here: none of the server's objects may be
found by the collector (gc.DEBUG_SAVEALL keeps what it finds, so it can be counted).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import next_event
from sseutil import open_sse
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

SERVER_PACKAGES = ("edge.", "handlers.", "hub.", "services.")
# What the server makes for each connection (none may outlive the connection).
PER_CONNECTION = {"EventSocketHandler", "StrictProtocol", "Client", "_CountedStream",
                  "_LaneConnection", "SseHandler", "SseConnection", "HTTPServerRequest"}


def _server_garbage() -> collections.Counter[str]:
    """Collects, keeping what the collector found, and counts the server's objects in it."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = collections.Counter(
            type(o).__qualname__ for o in gc.garbage
            if type(o).__module__.startswith(SERVER_PACKAGES) or type(o) is HTTPServerRequest)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    return found


def _reset(conn: WebSocketClientConnection) -> None:
    """Drops the connection with a TCP reset (SO_LINGER 0), as a dead network would."""
    assert conn.stream is not None
    conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.stream.close()


async def _subscribed(api: Any, token: str) -> WebSocketClientConnection:
    conn = await api.ws(token)
    await conn.write_message(json.dumps({"id": 1, "type": "subscribe",
                                         "data": {"channel": "room:lobby"}}))
    assert (await next_event(conn))["type"] == "reply"
    return conn


async def _close(api: Any, ctx: Any, lane: Any, token: str) -> None:
    (await _subscribed(api, token)).close(1000)


async def _reset_after_a_message(api: Any, ctx: Any, lane: Any, token: str) -> None:
    _reset(await _subscribed(api, token))


async def _reset_while_a_message_runs(api: Any, ctx: Any, lane: Any, token: str) -> None:
    conn = await api.ws(token)
    await conn.write_message(json.dumps({"id": 1, "type": "subscribe",
                                         "data": {"channel": "room:lobby"}}))
    _reset(conn)


async def _server_closes(api: Any, ctx: Any, lane: Any, token: str) -> None:
    conn = await api.ws(token)
    ctx.hub.drop(list(ctx.hub.clients.values())[-1], (4000, "dropped"))
    assert await conn.read_message() is None


async def _server_closes_into_a_reset(api: Any, ctx: Any, lane: Any, token: str) -> None:
    conn = await api.ws(token)
    ctx.hub.drop(list(ctx.hub.clients.values())[-1], (4000, "dropped"))
    _reset(conn)


async def _served_by_tornado(api: Any, ctx: Any, lane: Any, token: str) -> None:
    # A repeated header field: the upgrade lane hands the head to Tornado's HTTP/1.1 parser.
    headers = HTTPHeaders()
    headers.add("X-Repeated", "1")
    headers.add("X-Repeated", "2")
    handed_back = lane.handed_back
    conn = await websocket_connect(HTTPRequest(f"{api.ws_url}/ws?token={token}",
                                               headers=headers))
    assert (await next_event(conn))["type"] == "connection.established"
    assert lane.handed_back == handed_back + 1
    conn.close(1000)


async def _rest(api: Any, ctx: Any, lane: Any, token: str) -> None:
    status, _, _ = await api.call("GET", "/api/v1/users/me", token=token)
    assert status == 200


async def _refused(api: Any, ctx: Any, lane: Any, token: str) -> None:
    with pytest.raises(HTTPClientError):
        await websocket_connect(f"{api.ws_url}/ws?token=not-a-token")


async def _sse_closed(api: Any, ctx: Any, lane: Any, token: str) -> None:
    stream = await open_sse(api.base_url, token)
    assert stream.status == 200
    stream.close()


async def _sse_reset(api: Any, ctx: Any, lane: Any, token: str) -> None:
    stream = await open_sse(api.base_url, token)
    assert stream.status == 200
    stream.writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()


ENDINGS: dict[str, Callable[[Any, Any, Any, str], Awaitable[None]]] = {
    "client close frame": _close,
    "reset after a message": _reset_after_a_message,
    "reset while a message runs": _reset_while_a_message_runs,
    "server close": _server_closes,
    "server close, then a reset": _server_closes_into_a_reset,
    "handshake served by Tornado's parser": _served_by_tornado,
    "refused handshake": _refused,
    "REST request": _rest,
    "SSE stream closed": _sse_closed,
    "SSE stream reset": _sse_reset,
}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.gen_test(timeout=30)
async def test_a_closed_connection_leaves_nothing_for_the_collector(api, ctx, http_server,
                                                                     ending):
    token = (await api.register())["access_token"]
    await _close(api, ctx, http_server.lane, token)  # a first connection warms the paths up
    await _until(lambda: not ctx.hub.clients, "the first connection closed")
    gc.collect()
    # Earlier tests in this process may have left objects of these types alive: the count
    # may not grow.
    alive = _live()
    closed = http_server.closed_sockets
    for _ in range(3):
        await ENDINGS[ending](api, ctx, http_server.lane, token)
    await _until(lambda: http_server.closed_sockets >= closed + 3 and not ctx.hub.clients,
                 "the server closing all three sockets")
    # Nothing for the collector, and nothing left alive either: a connection still open (or
    # not yet closed) would pass the first check without showing anything.
    assert _server_garbage() == collections.Counter()
    assert _live() - alive == collections.Counter()


def _live() -> collections.Counter[str]:
    """Counts the server's per-connection objects still alive."""
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects()
                               if type(o).__qualname__ in PER_CONNECTION)


async def _until(done: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Waits until done() holds, failing with `what` after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
