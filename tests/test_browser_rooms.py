"""Rooms in the browser test client and the dashboard (real Chromium), and in the Node script."""

from __future__ import annotations

import json

import pytest
from conftest import next_event
from test_browser import run_node


def messages_in(output: str) -> list[dict]:
    """Returns every message the Node script printed, in order."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(block)[0] for block in output.split("📨 Message received:\n")[1:]]


async def subscribed(conn, channel: str, request_id: int = 1) -> None:
    """Subscribes conn to channel and waits for the reply (skipping presence events)."""
    conn.write_message(json.dumps({"id": request_id, "type": "subscribe",
                                   "data": {"channel": channel}}))
    while True:
        event = await next_event(conn, timeout=10)
        if event["type"] == "reply" and event["id"] == request_id:
            assert event["data"] == {"channel": channel, "subscribed": True}
            return


# -- the Node script ------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_node_script_subscribes_and_publishes_to_a_room(api):
    """--subscribe joins a room; --publish sends a message that echoes back and reaches others."""
    sender = await api.register(name="Node Sender")
    listener = await api.register(name="Room Listener")
    conn = await api.ws(listener["access_token"])
    await subscribed(conn, "room:lobby")

    code, out, err = await run_node(
        "--seconds", "8", "--subscribe", "room:lobby", "--publish", '{"text": "hello from node"}',
        env={"TOKEN": sender["access_token"], "WS_URL": api.ws_url + "/ws"})
    assert code == 0, err
    assert "✅ Subscribed to room:lobby" in out
    printed = messages_in(out)
    echo = [m for m in printed if m["type"] == "channel.message"]
    assert len(echo) == 1, out
    assert echo[0]["channel"] == "room:lobby"
    assert echo[0]["data"]["body"] == {"text": "hello from node"}
    assert echo[0]["data"]["from"] == {"user_id": sender["user"]["id"], "name": "Node Sender"}
    replies = [m for m in printed if m["type"] == "reply"]
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[1]["data"]["id"] == echo[0]["data"]["id"]
    assert f"✅ Published to room:lobby (message {echo[0]['data']['id']})" in out

    seen = await next_event(conn, timeout=10, skip=("presence.joined", "presence.left"))
    assert seen["type"] == "channel.message"
    assert seen["data"]["id"] == echo[0]["data"]["id"]
    assert seen["data"]["body"] == {"text": "hello from node"}
    conn.close()


@pytest.mark.gen_test(timeout=90)
async def test_node_script_reports_room_errors_and_bad_publish_json(api):
    """An unknown room prints its error code and exits 1; a bad --publish fails at once."""
    user = await api.register()
    env = {"TOKEN": user["access_token"], "WS_URL": api.ws_url + "/ws"}
    code, out, err = await run_node("--seconds", "20", "--subscribe", "room:nowhere",
                                    "--publish", '{"text": "lost"}', env=env)
    assert code == 1
    assert "❌ subscribe room:nowhere failed: unknown_channel: room 'nowhere' not found" in err
    assert not any(m["type"] == "channel.message" for m in messages_in(out))

    code, _, err = await run_node("--subscribe", "room:lobby", "--publish", "[1, 2]", env=env)
    assert code == 1 and "--publish must be a JSON object" in err
    code, _, err = await run_node("--subscribe", "room:lobby", "--publish", "{nope", env=env)
    assert code == 1 and "--publish must be JSON" in err
    code, _, err = await run_node("--publish", '{"text": "x"}', env=env)
    assert code == 1 and "--publish needs --subscribe" in err
    code, out, _ = await run_node("--help", env=env)
    assert code == 0 and "--subscribe CHANNEL" in out and "--publish JSON" in out
