"""Regenerates the README screenshots docs/img/dashboard.png and docs/img/test-client.png.

Runs the app in-process on a temporary SQLite database, simulates about a minute of traffic
(clients coming and going and joining rooms, broadcasts, account changes, a chat in a room)
while an admin's dashboard and a /test page watch, then captures both pages with Debian's
Chromium through Playwright.

    .venv/bin/python tests/screenshots.py            # about 80 seconds
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright, expect  # noqa: E402
from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.netutil import bind_sockets  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

from app import make_app, make_context  # noqa: E402
from config import Settings  # noqa: E402
from models.db import init_db  # noqa: E402
from models.user import User  # noqa: E402
from services.rooms import ensure_lobby  # noqa: E402

OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "correct-horse-42"
PEOPLE = ["Grace Hopper", "Alan Turing", "Katherine Johnson", "Linus Torvalds",
          "Margaret Hamilton", "Dennis Ritchie", "Barbara Liskov", "Ken Thompson"]
# Open connections over time (one step every 3 s): a morning ramp, a dip, a second wave.
SHAPE = [1, 2, 3, 5, 6, 8, 9, 11, 12, 12, 10, 8, 7, 7, 9, 12, 14, 15, 16, 14, 13, 13, 12, 12]
# Rooms created by the admin; background clients subscribe round-robin to ROOM_CYCLE.
ROOMS = [("design", "Design reviews", False), ("ops-oncall", "On-call", True),
         ("random", "Watercooler", False)]
# API keys the admin created for the application's services (the dashboard lists them).
KEYS = [("billing", ["notify", "publish"]), ("support-bot", ["presence", "history"])]
ROOM_CYCLE = ["room:lobby", "room:design", "room:random", "room:lobby", "room:ops-oncall"]
CHAT = [("Alan Turing", "Morning! The new rooms panel is live on staging."),
        ("Katherine Johnson", "Checked the numbers: delivery p99 is well under budget."),
        ("Alan Turing", "Presence looks right too: reloads no longer flap.")]
ALERTS = [("Deploy 2.4.0 starts in 10 minutes", "normal"),
          ("Deploy finished: all nodes healthy", "low"),
          ("Elevated error rate on the payments API", "high"),
          ("Error rate back to normal", "normal"),
          ("Database failover drill at 22:00 UTC", "critical")]


class Client:
    """A tiny JSON client for the in-process server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = AsyncHTTPClient()

    async def call(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        response = await self.http.fetch(HTTPRequest(self.base + path, method=method, body=data,
                                                     headers=headers), raise_error=False)
        return json.loads(response.body) if response.body else None

    async def register(self, name: str) -> dict:
        email = name.split()[0].lower() + "@example.com"
        body = {"name": name, "email": email, "password": PASSWORD, "age": 30 + len(name)}
        return (await self.call("POST", "/api/v1/auth/register", body))["data"]


async def connect(port: int, token: str):
    """Opens /ws and keeps reading it: a Tornado client that is not read stops answering
    pings, and the server's heartbeat would drop it within a minute."""
    conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws?token={token}")

    async def drain() -> None:
        while await conn.read_message() is not None:
            pass

    asyncio.ensure_future(drain())
    return conn


async def send(conn, type_: str, data: dict) -> None:
    """Sends one client frame (its reply, if any, is left unread)."""
    await conn.write_message(json.dumps({"type": type_, "data": data}))


async def main() -> None:
    data_dir = tempfile.mkdtemp(prefix="events-shots-")
    init_db("sqlite:///" + os.path.join(data_dir, "events.db"))
    ensure_lobby()
    settings = Settings(data_dir=data_dir, jwt_secret="screenshots-" + "x" * 40,
                        rate_limits=False, health_interval=3600)
    ctx = make_context(settings)
    await ctx.broker.start()
    ctx.messages.start()
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = HTTPServer(make_app(ctx))
    server.add_sockets(sockets)
    base = f"http://127.0.0.1:{port}"
    api = Client(base)

    admin = await api.register("Ada Lovelace")
    await ctx.run(lambda: User.update(role="superadmin").where(User.id == admin["user"]["id"])
                  .execute())
    admin = (await api.call("POST", "/api/v1/auth/login",
                            {"email": "ada@example.com", "password": PASSWORD}))["data"]
    people = [await api.register(name) for name in PEOPLE]
    token = admin["access_token"]
    for name, title, private in ROOMS:
        await api.call("POST", "/api/v1/rooms", {"name": name, "title": title,
                                                 "private": private}, token)
    for name, scopes in KEYS:
        await api.call("POST", "/api/v1/admin/api-keys", {"name": name, "scopes": scopes}, token)
    by_name = {p["user"]["name"]: p for p in people}
    chatters = {}
    for name in ("Alan Turing", "Katherine Johnson"):
        chatters[name] = await connect(port, by_name[name]["access_token"])
        await send(chatters[name], "subscribe", {"channel": "room:design"})
    for name, text in CHAT[:2]:
        await send(chatters[name], "publish", {"channel": "room:design", "data": {"text": text}})

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1440, "height": 900},
                                            device_scale_factor=1)
        dash = await context.new_page()
        await dash.goto(base + "/")
        await dash.fill("#email", "ada@example.com")
        await dash.fill("#password", PASSWORD)
        await dash.click("#login")
        await expect(dash.locator("#ws-status")).to_have_text("Live")

        tester = await context.new_page()
        await tester.goto(base + "/test")
        await tester.fill("#token", people[0]["access_token"])

        open_conns: list = []
        for step, target in enumerate(SHAPE):
            while len(open_conns) < target:
                who = people[len(open_conns) % len(people)]
                conn = await connect(port, who["access_token"])
                channel = ROOM_CYCLE[len(open_conns) % len(ROOM_CYCLE)]
                if channel != "room:ops-oncall":  # private: only its owner may subscribe
                    await send(conn, "subscribe", {"channel": channel})
                open_conns.append(conn)
            while len(open_conns) > target:
                open_conns.pop().close()
            if step % 4 == 1:
                message, priority = ALERTS[(step // 4) % len(ALERTS)]
                for _ in range(1 + step % 3):
                    await api.call("POST", "/ws/broadcast",
                                   {"message": message, "priority": priority}, token)
            if step == len(SHAPE) - 9:
                await tester.click("#connect")
                await expect(tester.locator("#status")).to_have_text("Connected")
                await expect(tester.locator("#room-select option[value='room:design']")) \
                    .to_have_count(1)
                await tester.select_option("#room-select", "room:design")
                await tester.click("#room-join")
                await expect(tester.locator("#room-messages .room-msg")).to_have_count(2)
            if step == len(SHAPE) - 8:
                await tester.fill("#room-input", "Great, joining the review at 3.")
                await tester.press("#room-input", "Enter")
            if step == len(SHAPE) - 7:
                name, text = CHAT[2]
                await send(chatters[name], "publish",
                           {"channel": "room:design", "data": {"text": text}})
            if step == len(SHAPE) - 6:
                await api.call("PATCH", "/api/v1/users/me", {"age": 39},
                               people[0]["access_token"])
            if step == len(SHAPE) - 5:
                await api.call("PUT", f"/api/v1/users/{people[2]['user']['id']}/role",
                               {"role": "admin"}, token)
            if step == len(SHAPE) - 4:
                await api.register("Frances Allen")
            if step == len(SHAPE) - 3:
                await api.call("DELETE", f"/api/v1/users/{people[7]['user']['id']}", token=token)
            if step == len(SHAPE) - 2:
                await tester.click("#preset-refresh")
                await tester.click("#send")
            await asyncio.sleep(3)

        await dash.fill("#broadcast-message", "Database failover drill at 22:00 UTC")
        await dash.select_option("#broadcast-priority", "critical")
        await dash.click("#broadcast-send")
        await expect(dash.locator("#broadcast-result")).to_contain_text("Delivered to")
        await dash.fill("#broadcast-message", "")
        await dash.locator("#broadcast-message").blur()
        last_alert = tester.locator("#messages .evt-system-alert").first
        await expect(last_alert).to_contain_text("failover")
        await dash.wait_for_timeout(4500)  # let the toast fade and one more stats poll land
        await expect(dash.locator("#rooms-body tr")).to_have_count(len(ROOMS) + 1)
        await expect(dash.locator("#api-keys-body tr[data-key-id]")).to_have_count(2)
        # Someone is typing in the room while the pictures are taken (it ends by itself in 6 s).
        await send(chatters["Alan Turing"], "typing", {"channel": "room:design", "active": True})
        await expect(tester.locator("#room-typing")).to_have_text("Alan Turing is typing…")

        OUT.mkdir(parents=True, exist_ok=True)
        await dash.evaluate("window.scrollTo(0, 0)")
        await dash.screenshot(path=str(OUT / "dashboard.png"), full_page=True,
                              animations="disabled")
        await tester.set_viewport_size({"width": 1440, "height": 1000})
        await tester.evaluate("window.scrollTo(0, 0)")
        await tester.screenshot(path=str(OUT / "test-client.png"), full_page=True,
                                animations="disabled")
        await browser.close()
        for conn in [*open_conns, *chatters.values()]:
            conn.close()
    server.stop()
    await ctx.messages.close()
    await ctx.broker.close()
    ctx.shutdown_pools()
    print(f"wrote {OUT / 'dashboard.png'} and {OUT / 'test-client.png'}")


if __name__ == "__main__":
    asyncio.run(main())
