"""/test on the client library in real Chromium: dropped by the server, the page reconnects,
resumes the feed and its room and says whether the missed events were recovered."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal

import pytest
from test_browser import NODE_DIR, dashboard_login, expect, node_or_skip, sqlite_only
from test_browser_rooms import browser_contexts, connected_test_page, messages_in

from hub.disconnect import SHUTTING_DOWN
from hub.events import Event
from hub.messages import ALL

RECOVERY = "#recovery"


async def join_lobby(page) -> None:
    """Subscribes the /test page to room:lobby through its Rooms panel."""
    await page.select_option("#room-select", "room:lobby")
    await page.click("#room-join")
    await expect(page.locator("#room-current")).to_have_text("room:lobby · subscribed")


def drop_user(ctx, user_id: int) -> None:
    """Closes every socket of a user server-side, as a deploy would."""
    for client in list(ctx.hub.by_user[user_id].values()):
        ctx.hub.drop(client, SHUTTING_DOWN)


async def alerts_on(page) -> list[str]:
    """Returns the message of every system.alert in the page's log, oldest first."""
    payloads = await page.locator("#messages li[data-type='system.alert'] .msg-payload")\
        .all_text_contents()
    return sorted(json.loads(p)["message"] for p in payloads)


async def room_texts(page) -> list[str]:
    """Returns the text of every message shown in the Rooms panel, in page order."""
    return await page.locator("#room-messages .room-msg-body").all_text_contents()


@sqlite_only
@pytest.mark.gen_test(timeout=180)
async def test_test_page_recovers_missed_feed_and_room_events_after_a_drop(api):
    """Dropped while alerts and room messages are published, /test says how many it recovered
    and shows every event exactly once."""
    user = await api.register(name="Resuming Reader")
    admin = await api.admin()
    ctx = api.ctx
    await ctx.streams.ready("room:lobby")
    sender = admin["user"]["id"]
    async with browser_contexts(1) as (context,):
        watched = await connected_test_page(context, api.base_url, user["access_token"])
        page = watched.page
        await join_lobby(page)
        n = 0
        for _ in range(4):  # live before the drop
            ctx.hub.publish(Event("system.alert", {"message": f"a{n:02d}"}), ALL, logged=True)
            await ctx.messages.publish("lobby", sender, "Admin", {"text": f"m{n:02d}"})
            n += 1
        await expect(page.locator("#room-messages .room-msg")).to_have_count(n)
        drop_user(ctx, user["user"]["id"])
        for _ in range(6):  # published while the page is away, in the same IOLoop turn
            ctx.hub.publish(Event("system.alert", {"message": f"a{n:02d}"}), ALL, logged=True)
            await ctx.messages.publish("lobby", sender, "Admin", {"text": f"m{n:02d}"})
            n += 1
        await expect(page.locator(RECOVERY)).to_have_text(
            "reconnected, 12 missed events recovered", timeout=30_000)
        await expect(page.locator("#status")).to_have_text("Connected")
        for _ in range(3):  # live again
            ctx.hub.publish(Event("system.alert", {"message": f"a{n:02d}"}), ALL, logged=True)
            await ctx.messages.publish("lobby", sender, "Admin", {"text": f"m{n:02d}"})
            n += 1
        await expect(page.locator("#room-messages .room-msg")).to_have_count(n)
        await expect(page.locator("#messages li[data-type='system.alert']")).to_have_count(n)
        assert await room_texts(page) == [f"m{i:02d}" for i in range(n)]
        assert await alerts_on(page) == [f"a{i:02d}" for i in range(n)]
        # Every room message reached the log once as an event: live, replayed or live again.
        assert await page.locator("#messages li[data-type='channel.message']").count() == n
        await expect(page.locator("#messages li[data-type='connection.established']"))\
            .to_have_count(2)
        assert watched.errors == [] and watched.dialogs == []


@sqlite_only
@pytest.mark.settings(history_size=3)
@pytest.mark.gen_test(timeout=180)
async def test_test_page_refetches_when_it_cannot_recover(api):
    """A trimmed room position and then a stale feed epoch both show "could not recover,
    refreshed", and the room's messages are refetched over REST, each once."""
    user = await api.register(name="Trimmed Reader")
    admin = await api.admin()
    ctx = api.ctx
    await ctx.streams.ready("room:lobby")
    sender = admin["user"]["id"]
    async with browser_contexts(1) as (context,):
        watched = await connected_test_page(context, api.base_url, user["access_token"])
        page = watched.page
        await join_lobby(page)
        await ctx.messages.publish("lobby", sender, "Admin", {"text": "m00"})
        await expect(page.locator("#room-messages .room-msg")).to_have_count(1)
        drop_user(ctx, user["user"]["id"])
        for n in range(1, 9):  # more than the 3 the room's log keeps
            await ctx.messages.publish("lobby", sender, "Admin", {"text": f"m{n:02d}"})
        await expect(page.locator(RECOVERY)).to_have_text("could not recover, refreshed",
                                                          timeout=30_000)
        await expect(page.locator("#room-messages .room-msg")).to_have_count(9)
        assert await room_texts(page) == [f"m{i:02d}" for i in range(9)]

        # The feed's history was lost (another epoch): refreshed again, nothing doubled.
        await page.evaluate("window.testClient._feed.epoch = 'gone'")
        drop_user(ctx, user["user"]["id"])
        await ctx.messages.publish("lobby", sender, "Admin", {"text": "m09"})
        notes = page.locator("#messages li.note", has_text="could not recover, refreshed")
        await expect(notes).to_have_count(2, timeout=30_000)
        await expect(page.locator("#room-messages .room-msg")).to_have_count(10)
        assert await room_texts(page) == [f"m{i:02d}" for i in range(10)]
        await expect(page.locator("#status")).to_have_text("Connected")
        assert watched.errors == [] and watched.dialogs == []


@sqlite_only
@pytest.mark.gen_test(timeout=180)
async def test_dashboard_resumes_its_socket_after_a_drop(api):
    """Dropped by the server, the dashboard reconnects, resumes its feed and shows each alert
    published meanwhile once."""
    admin = await api.admin()
    ctx = api.ctx
    async with browser_contexts(1) as (context,):
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#ws-status")).to_have_text("Live")
        ctx.hub.publish(Event("system.alert", {"message": "before"}), ALL, logged=True)
        alerts = page.locator("#feed .evt-system-alert")
        await expect(alerts).to_have_count(1)
        drop_user(ctx, admin["user"]["id"])
        for n in range(5):
            ctx.hub.publish(Event("system.alert", {"message": f"away {n}"}), ALL, logged=True)
        status = page.locator("#ws-status")
        await expect(status).to_have_attribute(
            "data-recovery", re.compile(r"^reconnected, \d+ missed events recovered$"),
            timeout=30_000)
        await expect(status).to_have_text("Live")
        ctx.hub.publish(Event("system.alert", {"message": "after"}), ALL, logged=True)
        await expect(alerts).to_have_count(7)
        for n in range(5):
            await expect(page.locator("#feed .evt-system-alert", has_text=f"away {n}"))\
                .to_have_count(1)
        await expect(page.locator("#feed .evt-connection-established")).to_have_count(2)
        assert watched.errors == [] and watched.dialogs == []


# -- the Node script ------------------------------------------------------------------------------


class NodeRun:
    """The Node script running in the background, its output read as it comes."""

    def __init__(self, proc) -> None:
        self.proc = proc
        self.out = ""
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while chunk := await self.proc.stdout.read(4096):
            self.out += chunk.decode()

    async def wait_for(self, check, timeout: float = 60.0) -> None:
        """Waits until check(output) is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check(self.out):
            assert loop.time() < deadline, f"the script never got there:\n{self.out}"
            assert self.proc.returncode is None, f"the script exited:\n{self.out}"
            await asyncio.sleep(0.05)

    async def finish(self) -> tuple[int, str, str]:
        """Interrupts the script (Ctrl-C) and returns its exit code, stdout and stderr."""
        self.proc.send_signal(signal.SIGINT)
        err = await asyncio.wait_for(self.proc.stderr.read(), 30)
        await asyncio.wait_for(self.reader, 30)
        return await asyncio.wait_for(self.proc.wait(), 30), self.out, err.decode()


async def start_node(*args: str, env: dict[str, str]) -> NodeRun:
    """Starts the Node script without blocking the IOLoop that serves the app."""
    proc = await asyncio.create_subprocess_exec(
        node_or_skip(), str(NODE_DIR / "test-websocket.js"), *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return NodeRun(proc)


def printed(out: str, type_: str) -> list[dict]:
    """Returns every message of one type the script printed, in order."""
    return [m for m in messages_in(out) if m["type"] == type_]


@sqlite_only
@pytest.mark.gen_test(timeout=180)
async def test_node_script_resumes_feed_and_room_after_a_drop(api):
    """Dropped by the server, the script reconnects with since/epoch, re-subscribes its room
    from its offset, prints what it recovered and gets every event once, in order."""
    user = await api.register(name="Node Resumer")
    admin = await api.admin()
    ctx = api.ctx
    await ctx.streams.ready("room:lobby")
    sender = admin["user"]["id"]
    run = await start_node("--seconds", "0", "--subscribe", "room:lobby",
                           env={"TOKEN": user["access_token"], "WS_URL": api.ws_url + "/ws"})

    async def publish(n: int) -> None:
        ctx.hub.publish(Event("system.alert", {"message": f"a{n:02d}"}), ALL, logged=True)
        await ctx.messages.publish("lobby", sender, "Admin", {"text": f"m{n:02d}"})

    await run.wait_for(lambda out: "✅ Subscribed to room:lobby" in out)
    for n in range(3):
        await publish(n)
    await run.wait_for(lambda out: '"m02"' in out and '"a02"' in out)
    drop_user(ctx, user["user"]["id"])
    for n in range(3, 8):  # while the script is away, in the same IOLoop turn
        await publish(n)
    await run.wait_for(lambda out: "🔄 room:lobby: recovered" in out)
    for n in range(8, 10):
        await publish(n)
    await run.wait_for(lambda out: '"m09"' in out and '"a09"' in out)
    code, out, err = await run.finish()
    assert code == 0, err
    assert "🔌 WebSocket disconnected by the server (code 1001" in out
    assert "🔁 Reconnecting in " in out and "✅ WebSocket reconnected!" in out
    assert "🔄 feed: recovered 5 missed events" in out
    assert "🔄 room:lobby: recovered 5 missed events" in out
    assert "📡 Re-subscribing to room:lobby from offset " in out
    alerts = [m["data"]["message"] for m in printed(out, "system.alert")]
    assert alerts == [f"a{n:02d}" for n in range(10)]
    room = [m["data"]["body"]["text"] for m in printed(out, "channel.message")]
    assert room == [f"m{n:02d}" for n in range(10)]
    assert len(printed(out, "connection.established")) == 2


@sqlite_only
@pytest.mark.settings(history_size=3)
@pytest.mark.gen_test(timeout=180)
async def test_node_script_says_when_it_cannot_recover_and_can_exit_instead(api):
    """A room trimmed past the script's offset prints "could not recover"; --no-reconnect
    exits 1 on the drop."""
    user = await api.register(name="Node Trimmed")
    admin = await api.admin()
    ctx = api.ctx
    await ctx.streams.ready("room:lobby")
    env = {"TOKEN": user["access_token"], "WS_URL": api.ws_url + "/ws"}
    run = await start_node("--seconds", "0", "--subscribe", "room:lobby", env=env)
    await run.wait_for(lambda out: "✅ Subscribed to room:lobby" in out)
    await ctx.messages.publish("lobby", admin["user"]["id"], "Admin", {"text": "first"})
    await run.wait_for(lambda out: '"first"' in out)
    drop_user(ctx, user["user"]["id"])
    for n in range(8):  # more than the 3 the room's log keeps
        await ctx.messages.publish("lobby", admin["user"]["id"], "Admin", {"text": f"gone {n}"})
    await run.wait_for(lambda out: "room:lobby: could not recover" in out)
    code, out, err = await run.finish()
    assert code == 0, err
    assert "🔄 feed: recovered 0 missed events" in out
    assert [m["data"]["body"]["text"] for m in printed(out, "channel.message")] == ["first"]

    run = await start_node("--seconds", "0", "--no-reconnect", env=env)
    await run.wait_for(lambda out: "✅ WebSocket connected!" in out and "📨" in out)
    drop_user(ctx, user["user"]["id"])
    code = await asyncio.wait_for(run.proc.wait(), 30)
    await asyncio.wait_for(run.reader, 30)
    assert code == 1
    assert "disconnected by the server (code 1001" in run.out
    assert "Reconnecting" not in run.out
