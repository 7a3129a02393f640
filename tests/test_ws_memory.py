"""What an idle upgraded socket's handler and protocol cost: shared-key attribute dicts."""

from __future__ import annotations

import asyncio
import gc
import json
import sys

import pytest
from conftest import next_event
from tornado.websocket import websocket_connect

from edge import protocol as wsprotocol
from handlers.ws import EventSocketHandler

# A shared-key instance dict: its values array only (about 300 bytes on CPython 3.11-3.12); an
# unshared dict of the same ~28 keys is about 1.6 KiB.
SHARED_DICT_MAX = 600


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython dict layout")
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_handlers_keep_shared_key_dicts_after_refusals_and_concurrent_handshakes(api, app,
                                                                                        ctx,
                                                                                        monkeypatch):
    # A fresh subclass starts with an empty key table, as the real class does in a new process.
    class FreshHandler(EventSocketHandler):
        pass

    class FreshProtocol(wsprotocol.StrictProtocol):
        pass

    monkeypatch.setattr(wsprotocol, "StrictProtocol", FreshProtocol)

    app.add_handlers(r".*$", [(r"/ws-fresh", FreshHandler, {"ctx": ctx})])
    data = await api.register()
    token = data["access_token"]
    for path in ("/ws-fresh", "/ws-fresh?token=bad", f"/ws-fresh?token={token}"):
        status, _, _ = await api.call("GET", path)  # refused: no token, bad token, no upgrade
        assert status in (400, 401)
    # Many handshakes in flight at once: each creates its handler before any reaches open().
    conns = await asyncio.gather(*(websocket_connect(f"{api.ws_url}/ws-fresh?token={token}")
                                   for _ in range(20)))
    for conn in conns:
        assert (await next_event(conn))["type"] == "connection.established"
    gc.collect()
    handlers = [o for o in gc.get_objects() if type(o) is FreshHandler and o.client is not None]
    assert len(handlers) == 20
    sizes = sorted(sys.getsizeof(h.__dict__) for h in handlers)
    assert sizes[-1] <= SHARED_DICT_MAX, sizes
    # Their WebSocket protocol objects too (29 attributes: at CPython's limit for sharing).
    protocols = [h.ws_connection for h in handlers]
    assert all(type(p) is FreshProtocol for p in protocols)
    sizes = sorted(sys.getsizeof(p.__dict__) for p in protocols)
    assert sizes[-1] <= SHARED_DICT_MAX, sizes
    # A socket that has sent a message keeps them shared as well (the frame reader's buffer).
    for conn in conns:
        await conn.write_message(json.dumps({"type": "no-such-verb"}))
        assert (await next_event(conn))["data"]["code"] == "unknown_type"
    for objects in (handlers, protocols):
        sizes = sorted(sys.getsizeof(o.__dict__) for o in objects)
        assert sizes[-1] <= SHARED_DICT_MAX, sizes
    for conn in conns:
        conn.close()
