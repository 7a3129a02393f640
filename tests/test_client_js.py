"""The client library (clients/js, served at /clients/js/index.js) in real Chromium: it resumes
after a server-side disconnect with no gap and no duplicate, for the feed and a room."""

from __future__ import annotations

import asyncio

import pytest
from test_browser import chromium, sqlite_only

from hub.disconnect import SHUTTING_DOWN
from hub.events import Event
from hub.messages import ALL

PAGE_SETUP = """async ({token}) => {
  window.lib = await import('/clients/js/index.js');
  window.got = {feed: [], room: []};
  window.recoveries = [];
  window.closes = 0;
  const client = window.lib.connect(location.origin, {token, baseDelay: 100, maxDelay: 400});
  window.client = client;
  client.on('system.alert', (e) => window.got.feed.push(Number(e.data.message)));
  client.on('channel.message', (e) => window.got.room.push(e.data.body.n));
  client.on('recovery', (r) => window.recoveries.push(r.data.streams));
  client.on('disconnected', () => { window.closes += 1; });
  await client.ready();
  const room = await client.subscribe('room:lobby');
  return room.channel === 'room:lobby' && room.position !== null;
}"""


async def until(page, script: str, timeout: float = 30.0) -> None:
    """Waits until a page expression is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(script):
        assert loop.time() < deadline, f"page never reached: {script}"
        await asyncio.sleep(0.05)


@sqlite_only
@pytest.mark.gen_test(timeout=120)
async def test_client_resumes_feed_and_room_without_gap_or_duplicate(api):
    """Dropped by the server while alerts and room messages are published, the library
    reconnects, resumes both streams and its caller sees every event once, in order."""
    user = await api.register()
    admin = await api.admin()
    ctx = api.ctx
    await ctx.streams.ready("room:lobby")
    async with chromium() as context:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(api.base_url + "/health")
        assert await page.evaluate(PAGE_SETUP, {"token": user["access_token"]}) is True
        n = 0
        for _ in range(10):  # through the outbox, over HTTP
            status, _, _ = await api.call("POST", "/ws/broadcast", {"message": str(n)},
                                          admin["access_token"])
            assert status == 200
            await ctx.messages.publish("lobby", admin["user"]["id"], "Admin", {"n": n})
            n += 1
        await until(page, "window.got.feed.length >= 5")
        for client in list(ctx.hub.by_user[user["user"]["id"]].values()):
            ctx.hub.drop(client, SHUTTING_DOWN)  # a deploy: the server closes the socket
        for _ in range(10):  # published while the page is away, in the same IOLoop turn
            ctx.hub.publish(Event("system.alert", {"message": str(n)}), ALL, logged=True)
            await ctx.messages.publish("lobby", admin["user"]["id"], "Admin", {"n": n})
            n += 1
        await until(page, "window.recoveries.length >= 2")  # the first connection's and this
        for _ in range(10):  # live again
            status, _, _ = await api.call("POST", "/ws/broadcast", {"message": str(n)},
                                          admin["access_token"])
            assert status == 200
            await ctx.messages.publish("lobby", admin["user"]["id"], "Admin", {"n": n})
            n += 1
        await until(page, f"window.got.feed.length >= {n} && window.got.room.length >= {n}")
        got = await page.evaluate("window.got")
        recoveries = await page.evaluate("window.recoveries")
        assert got["feed"] == list(range(n)) and got["room"] == list(range(n))
        assert await page.evaluate("window.closes") == 1
        assert recoveries == [
            [{"channel": None, "recovered": False, "missed": 0}],
            [{"channel": None, "recovered": True, "missed": 10},
             {"channel": "room:lobby", "recovered": True, "missed": 10}]]
        assert errors == []


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_client_reports_a_failed_recovery_and_backs_off_with_full_jitter(api):
    """A position the server cannot recover is reported as recovered false; while the server
    is unreachable, reconnect delays stay under base * 2^attempt (capped) and vary."""
    user = await api.register()
    async with chromium() as context:
        page = await context.new_page()
        await page.goto(api.base_url + "/health")
        await page.evaluate(PAGE_SETUP, {"token": user["access_token"]})
        await page.evaluate("window.client._feed.epoch = 'gone'")  # e.g. a restart without data
        for client in list(api.ctx.hub.by_user[user["user"]["id"]].values()):
            api.ctx.hub.drop(client, SHUTTING_DOWN)
        await until(page, "window.recoveries.length >= 2")
        assert (await page.evaluate("window.recoveries"))[1] == [
            {"channel": None, "recovered": False, "missed": 0},
            {"channel": "room:lobby", "recovered": True, "missed": 0}]
        delays = await page.evaluate("""async () => {
          const delays = [];
          const dead = window.lib.connect('http://127.0.0.1:9',
                                          {token: 't', baseDelay: 20, maxDelay: 160});
          dead.on('reconnecting', (r) => delays.push(r));
          while (delays.length < 8) await new Promise((r) => setTimeout(r, 20));
          dead.close();
          return delays;
        }""")
        for entry in delays:
            ceiling = min(160, 20 * 2 ** (entry["attempt"] - 1))
            assert 0 <= entry["delay"] < ceiling
        assert [d["attempt"] for d in delays] == list(range(1, len(delays) + 1))
        assert len({round(d["delay"], 3) for d in delays}) > 1


REFRESHING = """async ({token, refreshToken, other}) => {
  const {connect} = await import('/clients/js/index.js');
  const seen = {tokens: 0, disconnects: 0, refreshed: 0};
  const client = connect(location.origin, {token, refreshToken, backlog: 0});
  client.on('token', () => { seen.tokens += 1; });
  client.on('disconnected', () => { seen.disconnects += 1; });
  client.on('frame', ({message}) => {
    if (message.type === 'auth.refreshed') seen.refreshed += 1;
  });
  await client.ready();
  while (seen.refreshed < 2) await new Promise((resolve) => setTimeout(resolve, 50));
  await client.close();
  const refused = connect(location.origin, {token: 'not-a-jwt', refreshToken: other,
                                            baseDelay: 20, backlog: 0});
  seen.welcome = await refused.ready();
  await refused.close();
  return seen;
}"""


@sqlite_only
@pytest.mark.settings(access_token_ttl=3)
@pytest.mark.gen_test(timeout=90)
async def test_client_refreshes_tokens_over_rest_in_the_browser(api):
    """In Chromium the library keeps a socket open through 3-second tokens (REST refresh, then
    auth.refresh in band) and retries a refused handshake with a token from a refresh token."""
    user = await api.register()
    other = await api.login(user["user"]["email"])
    async with chromium() as context:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(api.base_url + "/health")
        seen = await page.evaluate(REFRESHING, {"token": user["access_token"],
                                                "refreshToken": user["refresh_token"],
                                                "other": other["refresh_token"]})
        assert seen["refreshed"] >= 2 and seen["tokens"] >= 2
        assert seen["disconnects"] == 1  # close() only: never dropped for an expired token
        assert seen["welcome"]["user_id"] == user["user"]["id"]
        assert errors == []
