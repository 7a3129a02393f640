"""`python -m events_client listen`: one JSON line per event, flushed as each arrives."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from liveserver import ADMIN, admin_tokens, unique
from support import broadcast, new_room, new_user

import events_client

pytestmark = pytest.mark.anyio


async def listen(*args: str) -> asyncio.subprocess.Process:
    """Starts the command line with these arguments."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "events_client", "listen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def line(process: asyncio.subprocess.Process) -> dict:
    """Returns the next line the command printed, parsed."""
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), 20)
    assert raw.endswith(b"\n"), raw
    return json.loads(raw)


async def test_listen_prints_events_as_json_lines_as_they_come(server):
    """Logged in with email and password and subscribed to a room, the command prints the
    recovery line at once (while it still runs), then an alert and a room message, each as
    one JSON object with every field, and exits 0 on SIGTERM."""
    listener, publisher = await new_user(server.url), await new_user(server.url)
    channel, tag = await new_room(server.url, listener.access_token), unique()
    process = await listen("--url", server.url, "--email", listener.user["email"],
                           "--password", "password123", "--subscribe", channel)
    first = await line(process)
    assert first["type"] == "recovery" and first["channel"] is None
    assert first["data"] == {"streams": [{"channel": None, "recovered": False, "missed": 0}]}
    await broadcast(server.url, (await admin_tokens(server.url)).access_token, f"{tag}:1")
    async with events_client.connect(server.url, token=publisher.access_token) as other:
        sent = await other.publish(channel, {"text": "hi"})
    seen: dict[str, dict] = {}
    while len(seen) < 2:  # the listener's own presence.joined comes too
        event = await line(process)
        assert set(event) == {"type", "channel", "offset", "timestamp", "data"}
        if event["type"] in ("system.alert", "channel.message"):
            seen[event["type"]] = event
    alert, message = seen["system.alert"], seen["channel.message"]
    assert alert["data"]["message"] == f"{tag}:1" and alert["channel"] is None
    assert message["channel"] == channel and message["offset"] == sent["offset"]
    assert message["data"]["body"] == {"text": "hi"}
    process.terminate()
    assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_listen_with_a_token_over_protobuf(server):
    """--token and --protocol protobuf: the same JSON lines, from binary frames."""
    user = await new_user(server.url)
    channel = await new_room(server.url, user.access_token)
    process = await listen("--url", server.url, "--token", user.access_token,
                           "--protocol", "protobuf", "--subscribe", channel, "--count", "3")
    assert (await line(process))["type"] == "recovery"
    async with events_client.connect(server.url, token=user.access_token) as publisher:
        await publisher.publish(channel, {"n": 7})
    joined, message = await line(process), await line(process)
    assert joined["type"] == "presence.joined" and joined["channel"] == channel
    assert message["type"] == "channel.message" and message["data"]["body"] == {"n": 7}
    assert await asyncio.wait_for(process.wait(), 20) == 0  # after --count 3 lines


async def test_listen_exits_1_with_a_reason_on_bad_credentials(server):
    """A refused login prints one line on stderr and exits 1."""
    process = await listen("--url", server.url, "--email", ADMIN[0], "--password", "wrong-one")
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1
    assert b"AuthError" in stderr and b"401" in stderr
