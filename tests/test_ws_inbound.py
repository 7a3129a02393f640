"""Inbound messages over a real socket: errors are replies, bad frames close the socket."""

from __future__ import annotations

import json

import pytest
from conftest import wait_closed
from wsutil import RFC3339, expect, wait_until

from hub.disconnect import MESSAGE_TOO_BIG


@pytest.mark.gen_test
async def test_invalid_json_gets_error_event_and_socket_stays_open(api):
    """Malformed JSON is answered with an error event and the connection keeps working."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message("{not json")
    event = await expect(conn, "error")
    assert event["data"]["code"] == "invalid_json" and event["data"]["message"]
    assert RFC3339.match(event["timestamp"])
    await conn.write_message("[1, 2]")
    assert (await expect(conn, "error"))["data"]["code"] == "invalid_message"
    await conn.write_message(json.dumps({"type": "ping"}))
    assert (await expect(conn, "error"))["data"]["code"] == "unknown_type"
    assert conn.close_code is None and len(api.ctx.hub.clients) == 1


@pytest.mark.gen_test
async def test_unknown_type_gets_error_event(api):
    """A well-formed message of an unknown type gets an unknown_type error event."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(json.dumps({"type": "chat.send", "data": {"text": "hi"}}))
    event = await expect(conn, "error")
    assert event["data"]["code"] == "unknown_type" and "chat.send" in event["data"]["message"]


@pytest.mark.gen_test
async def test_binary_message_closes_1003(api):
    """A binary frame closes the connection with 1003 (unsupported data)."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(b"\x00\x01\x02", binary=True)
    code, _ = await wait_closed(conn)
    assert code == 1003
    await wait_until(lambda: not api.ctx.hub.clients, what="unregister")


@pytest.mark.gen_test
async def test_message_over_64_kib_closes_1009(api):
    """An inbound message larger than 64 KiB closes the connection with 1009."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message("x" * 64 * 1024)  # exactly the limit is accepted
    assert (await expect(conn, "error"))["data"]["code"] == "invalid_json"
    await conn.write_message("x" * (64 * 1024 + 1))
    assert await wait_closed(conn) == tuple(MESSAGE_TOO_BIG)

