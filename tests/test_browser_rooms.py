"""Rooms in the browser test client and the dashboard (real Chromium), and in the Node script."""

from __future__ import annotations

import json
import os
import uuid
from contextlib import asynccontextmanager

import pytest
from conftest import next_event
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Watched,
    async_playwright,
    dashboard_login,
    expect,
    require,
    run_node,
    screenshot,
)


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
            data = event["data"]  # plus the room's position: {epoch, offset, recovered, missed}
            assert data["channel"] == channel and data["subscribed"] is True
            assert data["recovered"] is False and data["missed"] == 0
            return


@asynccontextmanager
async def browser_contexts(count: int):
    """Yields `count` separate browser contexts (separate users) on one Debian Chromium."""
    require(async_playwright is not None,
            "playwright is not installed: .venv/bin/pip install 'playwright>=1.50,<2'")
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium")
    expect.set_options(timeout=20_000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield [await browser.new_context(viewport={"width": 1360, "height": 900})
                   for _ in range(count)]
        finally:
            await browser.close()


# Records each frame the page sends with the page's own clock (Playwright's events can arrive
# late or bunched on a busy machine, which would blur a throttle measured on this side).
RECORD_SENT = """
const send = WebSocket.prototype.send;
window.__sent = [];
WebSocket.prototype.send = function (data) {
  window.__sent.push([performance.now(), String(data)]);
  return send.call(this, data);
};
"""


async def sent_frames(page, type_: str) -> list[tuple[float, dict]]:
    """Returns (page time in s, frame) for every frame of one type the page has sent."""
    raw = await page.evaluate("window.__sent")
    frames = [(t / 1000, json.loads(text)) for t, text in raw]
    return [(t, f) for t, f in frames if f.get("type") == type_]


async def connected_test_page(context, base_url: str, token: str) -> Watched:
    """Opens /test in context, connects with token and waits for the room list."""
    watched = Watched(await context.new_page())
    page = watched.page
    await page.add_init_script(RECORD_SENT)
    await page.goto(base_url + "/test")
    await page.fill("#token", token)
    await page.click("#connect")
    await expect(page.locator("#status")).to_have_text("Connected")
    await expect(page.locator("#room-select option[value='room:lobby']")).to_have_count(1)
    return watched


def room_name() -> str:
    return "chat-" + uuid.uuid4().hex[:8]


# -- /test ----------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=180)
async def test_two_users_chat_in_a_room_with_presence_and_typing(api):
    """Two browsers join a room: A's message reaches both, B sees A online and A's typing."""
    alice = await api.register(name="Alice Author")
    bob = await api.register(name="Bob Reader")
    room = room_name()
    channel = "room:" + room
    async with browser_contexts(2) as (ctx_a, ctx_b):
        a = await connected_test_page(ctx_a, api.base_url, alice["access_token"])
        b = await connected_test_page(ctx_b, api.base_url, bob["access_token"])

        # A creates the room in the panel, which subscribes A to it.
        await a.page.fill("#room-name", room)
        await a.page.click("#room-create")
        await expect(a.page.locator("#room-current")).to_have_text(channel + " · subscribed")
        await expect(a.page.locator("#room-select")).to_have_value(channel)

        await b.page.click("#rooms-reload")
        await b.page.select_option("#room-select", channel)
        await b.page.click("#room-join")
        await expect(b.page.locator("#room-current")).to_have_text(channel + " · subscribed")

        alice_id, bob_id = alice["user"]["id"], bob["user"]["id"]
        await expect(b.page.locator(f"#room-members [data-user-id='{alice_id}']")).to_contain_text(
            "Alice Author")
        await expect(b.page.locator("#room-online-count")).to_have_text("2")
        await expect(a.page.locator(f"#room-members [data-user-id='{bob_id}']")).to_contain_text(
            "Bob Reader")

        # While A types, B sees it; A never gets its own typing back.
        await a.page.locator("#room-input").press_sequentially("Hello Bob, ready?", delay=150)
        await expect(b.page.locator("#room-typing")).to_have_text("Alice Author is typing…")
        await expect(b.page.locator("#messages li[data-type='typing']").first).to_contain_text(
            '"active": true')
        await expect(a.page.locator("#room-typing")).to_have_text("")
        assert await a.page.locator("#messages li[data-type='typing']").count() == 0

        await a.page.press("#room-input", "Enter")
        for page in (a.page, b.page):
            message = page.locator("#room-messages .room-msg", has_text="Hello Bob, ready?")
            await expect(message).to_have_count(1)
            await expect(message.locator(".room-msg-from")).to_have_text("Alice Author")
        await expect(a.page.locator("#room-messages .room-msg-mine")).to_have_count(1)
        await expect(b.page.locator("#room-messages .room-msg-mine")).to_have_count(0)
        await expect(a.page.locator("#room-input")).to_have_value("")
        # 17 keystrokes over 2.5 s or more: `typing true` went at most once a second (and at
        # least once), then `false` right before the publish; requests carried ids.
        typing = await sent_frames(a.page, "typing")
        trues = [t for t, f in typing if f["data"] == {"channel": channel, "active": True}]
        assert 1 <= len(trues) <= 17
        assert all(t2 - t1 >= 0.99 for t1, t2 in zip(trues, trues[1:], strict=False)), trues
        assert typing[-1][1]["data"] == {"channel": channel, "active": False}
        publish = await sent_frames(a.page, "publish")
        assert [f["data"] for _, f in publish] == [
            {"channel": channel, "data": {"text": "Hello Bob, ready?"}}]
        assert typing[-1][0] <= publish[0][0] and isinstance(publish[0][1]["id"], int)
        # Sending ended A's typing at once (active: false), well before the 6 s expiry.
        await expect(b.page.locator("#room-typing")).to_have_text("", timeout=5_000)

        # B types and stays in the input: A's indicator goes away by itself.
        await b.page.locator("#room-input").press_sequentially("hm", delay=60)
        await expect(a.page.locator("#room-typing")).to_have_text("Bob Reader is typing…")
        await expect(a.page.locator("#room-typing")).to_have_text("", timeout=15_000)

        # B leaves: A sees B go after the grace, and B's panel is back to no room.
        await b.page.click("#room-leave")
        await expect(b.page.locator("#room-current")).to_have_text("not in a room")
        await expect(b.page.locator("#room-input")).to_be_disabled()
        await expect(a.page.locator(f"#room-members [data-user-id='{bob_id}']")).to_have_count(
            0, timeout=20_000)
        await expect(a.page.locator("#room-online-count")).to_have_text("1")
        await screenshot(a.page, "test-client-rooms")
        assert a.errors == [] and b.errors == []
        assert a.dialogs == [] and b.dialogs == []


@pytest.mark.gen_test(timeout=180)
async def test_rooms_panel_loads_earlier_messages_and_shows_errors(api):
    """The panel pages back through history and shows error codes for refused requests."""
    owner = await api.register(name="Olga Owner")
    guest = await api.register(name="Gus Guest")
    room = room_name()
    status, _, _ = await api.call("POST", "/api/v1/rooms", {"name": room},
                                  owner["access_token"])
    assert status == 201
    status, _, _ = await api.call("POST", "/api/v1/rooms", {"name": room + "-p", "private": True},
                                  owner["access_token"])
    assert status == 201
    conn = await api.ws(owner["access_token"])
    for n in range(25):
        conn.write_message(json.dumps({"id": n + 1, "type": "publish", "data": {
            "channel": "room:" + room, "data": {"text": f"message {n:02d}"}}}))
        reply = await next_event(conn, timeout=10, skip=("presence.joined", "channel.message"))
        assert reply["type"] == "reply", reply

    async with browser_contexts(1) as (context,):
        watched = await connected_test_page(context, api.base_url, guest["access_token"])
        page = watched.page
        await page.select_option("#room-select", "room:" + room)
        await page.click("#room-join")
        messages = page.locator("#room-messages .room-msg")
        await expect(messages).to_have_count(20)
        await expect(messages.first).to_contain_text("message 05")
        await expect(messages.last).to_contain_text("message 24")
        await page.click("#room-earlier")
        await expect(messages).to_have_count(25)
        await expect(messages.first).to_contain_text("message 00")
        await expect(page.locator("#room-earlier")).to_be_hidden()

        # A private room the guest is not a member of is not listed; creating a taken name
        # fails over REST with 409; a forbidden subscribe shows its code from the error reply.
        assert await page.locator(f"#room-select option[value='room:{room}-p']").count() == 0
        await page.fill("#room-name", room)
        await page.click("#room-create")
        error = page.locator("#room-error")
        await expect(error).to_contain_text("HTTP 409")
        await page.evaluate(
            "(ch) => { const o = document.createElement('option'); o.value = ch; o.text = ch;"
            " document.getElementById('room-select').appendChild(o); }", f"room:{room}-p")
        await page.select_option("#room-select", f"room:{room}-p")
        await page.click("#room-join")
        await expect(error).to_contain_text(f"subscribe room:{room}-p failed · forbidden:")
        await expect(page.locator("#room-current")).to_have_text("not in a room")
        # Chromium logs every failed fetch to the console; the refused create is the only one.
        assert [e for e in watched.errors if "409 (Conflict)" not in e] == []
        assert watched.dialogs == []
    conn.close()


# -- / ------------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=180)
async def test_dashboard_shows_who_is_online_and_room_counts(api):
    """The admin dashboard lists online users with tabs live and rooms with subscriber counts."""
    admin = await api.admin()
    user = await api.register(name="Olive Online")
    user_id = user["user"]["id"]
    async with browser_contexts(1) as (context,):
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#ws-status")).to_have_text("Live")
        own = page.locator(f"#online-list [data-user-id='{admin['user']['id']}']")
        await expect(own.locator(".online-tabs")).to_have_text("1 tab")
        lobby = page.locator("#rooms-body tr[data-room='lobby']")
        await expect(lobby.locator(".room-subscribers")).to_have_text("0")

        first = await api.ws(user["access_token"])
        row = page.locator(f"#online-list [data-user-id='{user_id}']")
        await expect(row.locator(".online-name")).to_have_text("Olive Online")
        came = page.locator("#feed .evt-user-online", has_text=f"Olive Online (#{user_id})")
        await expect(came).to_contain_text("came online")
        second = await api.ws(user["access_token"])
        await subscribed(second, "room:lobby")
        await page.click("#rooms-refresh")
        await expect(lobby.locator(".room-subscribers")).to_have_text("1")
        await expect(lobby.locator(".room-online")).to_have_text("1")
        await expect(row.locator(".online-tabs")).to_have_text("2 tabs")  # the 5 s refresh
        await expect(page.locator("#online-users")).to_have_text("2")
        await expect(page.locator("#online-tabs")).to_have_text("2 users · 3 tabs")
        await screenshot(page, "dashboard-online")

        first.close()
        second.close()
        await expect(row).to_have_count(0, timeout=20_000)  # user.offline after the 5 s grace
        went = page.locator("#feed .evt-user-offline", has_text=f"Olive Online (#{user_id})")
        await expect(went).to_contain_text("went offline")
        await expect(page.locator("#online-users")).to_have_text("1")
        await expect(lobby.locator(".room-subscribers")).to_have_text("0")
        assert watched.errors == [] and watched.dialogs == []


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
