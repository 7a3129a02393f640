"""/test's connection line and transports in real Chromium: a first connection is a fresh
start, its message box starts with a request the server accepts, and the page can follow its
feed and rooms over Server-Sent Events (EventSource) with the same recovery line."""

from __future__ import annotations

import json

import pytest
from test_browser import Watched, expect, sqlite_only
from test_browser_recovery import RECOVERY, alerts_on, drop_user, join_lobby, room_texts
from test_browser_rooms import RECORD_SENT, browser_contexts, connected_test_page

from hub.events import Event
from hub.messages import ALL


@sqlite_only
@pytest.mark.gen_test(timeout=120)
async def test_first_connection_is_a_fresh_start_and_the_example_message_is_accepted(api):
    """Connecting shows "connected (fresh start)", not a failed recovery; the message box's
    example is a subscribe the server answers with a reply of its id."""
    user = await api.register(name="First Timer")
    async with browser_contexts(1) as (context,):
        watched = await connected_test_page(context, api.base_url, user["access_token"])
        page = watched.page
        await expect(page.locator(RECOVERY)).to_have_text("connected (fresh start)")
        await expect(page.locator(RECOVERY)).to_have_class("hint hint-ok")
        await expect(page.locator("#messages li.note", has_text="connected (fresh start)"))\
            .to_have_count(1)
        assert await page.locator("#messages li.note", has_text="could not recover").count() == 0

        example = json.loads(await page.input_value("#send-text"))
        assert example == {"id": 1, "type": "subscribe", "data": {"channel": "room:lobby"}}
        await page.click("#send")
        reply = page.locator("#messages li[data-type='reply']")
        await expect(reply).to_have_count(1)
        data = json.loads(await reply.locator(".msg-payload").text_content())
        assert data["channel"] == "room:lobby" and data["subscribed"] is True
        assert await page.locator("#messages li[data-type='error']").count() == 0
        frames = await page.evaluate("window.__sent.map(([, text]) => JSON.parse(text))")
        assert frames[-1] == example

        # The presets write valid requests too: the refresh carries the pasted token.
        await page.click("#preset-refresh")
        refresh = json.loads(await page.input_value("#send-text"))
        assert refresh == {"type": "auth.refresh", "data": {"token": user["access_token"]}}
        await page.click("#preset-subscribe")
        assert json.loads(await page.input_value("#send-text")) == example
        assert watched.errors == [] and watched.dialogs == []


async def sse_page(context, base_url: str, token: str):
    """Opens /test, switches it to SSE and connects with token (a fresh start)."""
    watched = await connected_test_page_over(context, base_url, token, transport="sse")
    await expect(watched.page.locator(RECOVERY)).to_have_text("connected (fresh start)")
    return watched


async def connected_test_page_over(context, base_url: str, token: str, transport: str):
    """Opens /test, picks the transport, connects with token and waits for the room list."""
    watched = Watched(await context.new_page())
    page = watched.page
    await page.add_init_script(RECORD_SENT)
    await page.goto(base_url + "/test")
    await page.check(f"#transport-{transport}")
    await page.fill("#token", token)
    await page.click("#connect")
    await expect(page.locator("#status")).to_have_text("Connected")
    await expect(page.locator("#room-select option[value='room:lobby']")).to_have_count(1)
    return watched


@sqlite_only
@pytest.mark.gen_test(timeout=180)
async def test_test_page_over_sse_recovers_what_it_missed_after_a_drop(api):
    """Switched to SSE, /test follows room:lobby on an EventSource; dropped by the server, it
    comes back by itself, says how many missed events it recovered and shows each once; it
    publishes over REST."""
    user = await api.register(name="Stream Reader")
    admin = await api.admin()
    ctx = api.ctx
    await ctx.streams.ready("room:lobby")
    sender = admin["user"]["id"]

    async def publish(n: int) -> None:
        ctx.hub.publish(Event("system.alert", {"message": f"a{n:02d}"}), ALL, logged=True)
        await ctx.messages.publish("lobby", sender, "Admin", {"text": f"m{n:02d}"})

    async with browser_contexts(1) as (context,):
        watched = await sse_page(context, api.base_url, user["access_token"])
        page = watched.page
        await expect(page.locator("#ws-url")).to_have_text(api.base_url + "/sse")
        await expect(page.locator("#send")).to_be_disabled()
        await expect(page.locator("#send-sse-note")).to_be_visible()
        await expect(page.locator("#transport-ws")).to_be_disabled()
        assert ctx.hub.get_stats()["by_transport"] == {"websocket": 0, "sse": 1}

        await join_lobby(page)  # the stream reopens with channels=room:lobby from its last id
        await expect(page.locator(RECOVERY)).to_have_text(
            "reopened for the new rooms, 0 missed events recovered")
        n = 0
        for _ in range(3):
            await publish(n)
            n += 1
        await expect(page.locator("#room-messages .room-msg")).to_have_count(n)
        drop_user(ctx, user["user"]["id"])
        for _ in range(5):  # while the page is away, in the same IOLoop turn
            await publish(n)
            n += 1
        await expect(page.locator(RECOVERY)).to_have_text(
            "reconnected, 10 missed events recovered", timeout=30_000)
        await expect(page.locator("#status")).to_have_text("Connected")
        closed = page.locator("#messages li[data-type='close'] .msg-payload")
        assert json.loads(await closed.text_content())["code"] == 1001
        for _ in range(2):  # live again
            await publish(n)
            n += 1
        await expect(page.locator("#room-messages .room-msg")).to_have_count(n)
        await expect(page.locator("#messages li[data-type='system.alert']")).to_have_count(n)
        assert await room_texts(page) == [f"m{i:02d}" for i in range(n)]
        assert await alerts_on(page) == [f"a{i:02d}" for i in range(n)]
        assert await page.locator("#messages li[data-type='channel.message']").count() == n
        await expect(page.locator("#messages li[data-type='connection.established']"))\
            .to_have_count(3)  # the first stream, the one with the room, the one after the drop

        # SSE cannot send: the panel publishes with POST /api/v1/rooms/lobby/messages.
        await page.fill("#room-input", "sent over REST")
        await page.press("#room-input", "Enter")
        mine = page.locator("#room-messages .room-msg-mine", has_text="sent over REST")
        await expect(mine).to_have_count(1)
        status, body, _ = await api.call("GET", "/api/v1/rooms/lobby/messages?limit=1",
                                         token=user["access_token"])
        assert status == 200 and body["data"]["messages"][0]["body"] == {"text": "sent over REST"}
        assert await page.evaluate("window.__sent") == []  # no WebSocket was ever opened
        assert ctx.hub.get_stats()["by_transport"]["websocket"] == 0
        assert watched.errors == [] and watched.dialogs == []


@sqlite_only
@pytest.mark.gen_test(timeout=120)
async def test_test_page_over_sse_says_why_a_stream_ended_or_was_refused(api):
    """Over SSE, a refused token says the server's HTTP answer, and a 1008 close event ends
    the session with its reason instead of reconnecting."""
    user = await api.register(name="Soon Deleted")
    admin = await api.admin()
    async with browser_contexts(1) as (context,):
        watched = Watched(await context.new_page())
        page = watched.page
        await page.goto(api.base_url + "/test")
        await page.check("#transport-sse")
        await page.fill("#token", "not-a-token")
        await page.click("#connect")
        info = page.locator("#close-info")
        await expect(info).to_be_visible()
        await expect(page.locator("#close-title")).to_contain_text("Could not connect · HTTP 401")
        await expect(page.locator("#status")).to_have_text("Disconnected")

        # The choice survives a reload of the tab.
        await page.reload()
        await expect(page.locator("#transport-sse")).to_be_checked()
        await page.fill("#token", user["access_token"])
        await page.click("#connect")
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(info).to_be_hidden()
        code, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                    token=admin["access_token"])
        assert code == 200
        await expect(page.locator("#status")).to_have_text("Disconnected")
        await expect(page.locator("#close-title")).to_have_text(
            'The server closed the connection · code 1008 "account deleted"')
        await expect(page.locator("#close-detail")).to_have_text(
            "This account was deleted by an administrator.")
        await expect(page.locator("#transport-ws")).to_be_enabled()
        assert api.ctx.hub.get_stats()["by_transport"]["sse"] == 0
        errors = [e for e in watched.errors if "401" not in e]  # the refused stream's own line
        assert errors == [] and watched.dialogs == []


@sqlite_only
@pytest.mark.gen_test(timeout=150)
async def test_test_page_over_sse_drops_a_deleted_room_from_its_stream(api):
    """Over SSE, a room deleted while the page follows it is taken out of the stream's
    channels, so the next reconnect is not refused for it and resumes the rest."""
    user = await api.register(name="Room Leaver")
    admin = await api.admin()
    status, body, _ = await api.call("POST", "/api/v1/rooms", {"name": "short-lived"},
                                     admin["access_token"])
    assert status == 201, body
    async with browser_contexts(1) as (context,):
        watched = await sse_page(context, api.base_url, user["access_token"])
        page = watched.page
        await page.select_option("#room-select", "room:short-lived")
        await page.click("#room-join")
        await expect(page.locator("#room-current")).to_have_text("room:short-lived · subscribed")
        assert await page.evaluate("window.testClient.channels") == ["room:short-lived"]

        status, _, _ = await api.call("DELETE", "/api/v1/rooms/short-lived",
                                      token=admin["access_token"])
        assert status == 200
        await expect(page.locator("#room-error")).to_contain_text(
            "Unsubscribed from room:short-lived by the server")
        await expect(page.locator("#room-current")).to_have_text("not in a room")
        await expect(page.locator("#messages li[data-type='connection.established']"))\
            .to_have_count(3)  # the first stream, with the room, without it
        assert await page.evaluate("window.testClient.channels") == []

        drop_user(api.ctx, user["user"]["id"])
        api.ctx.hub.publish(Event("system.alert", {"message": "while away"}), ALL, logged=True)
        await expect(page.locator(RECOVERY)).to_have_text(
            "reconnected, 1 missed events recovered", timeout=30_000)
        await expect(page.locator("#status")).to_have_text("Connected")
        assert await alerts_on(page) == ["while away"]
        assert watched.errors == [] and watched.dialogs == []
