"""The dashboard and test client in real Chromium (Playwright), and the Node test script."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import next_event

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - reported by the tests themselves
    async_playwright = None
    expect = None

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NODE_DIR = ROOT / "clients" / "node"
XSS_NAME = "<img src=x onerror=alert(1)>"
WELCOME = "Welcome to WebSocket real-time updates"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# Browsers are slow and the pages do not depend on the database backend: SQLite only.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def require(condition: object, reason: str) -> None:
    """Skips the test when a tool is missing locally; under CI a missing tool is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: this test must not skip)")
        pytest.skip(reason)


class Watched:
    """A page plus the dialogs and errors it produced (CSP violations log console errors)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@asynccontextmanager
async def chromium():
    """Yields a fresh browser context on Debian's Chromium."""
    require(async_playwright is not None,
            "playwright is not installed: .venv/bin/pip install 'playwright>=1.50,<2'")
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium")
    expect.set_options(timeout=10_000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1360, "height": 900})
            yield context
        finally:
            await browser.close()


async def open_page(context: Any, url: str) -> Watched:
    watched = Watched(await context.new_page())
    await watched.page.goto(url)
    return watched


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True,
                          animations="disabled")


async def dashboard_login(context: Any, base_url: str, email: str) -> Watched:
    watched = await open_page(context, base_url + "/")
    page = watched.page
    await page.fill("#email", email)
    await page.fill("#password", "password123")
    await page.click("#login")
    return watched


async def color(locator: Any, prop: str) -> str:
    return await locator.evaluate(f"(e) => getComputedStyle(e).{prop}")


# -- /test -------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_test_client_shows_welcome_broadcast_clear_and_disconnect(api):
    """A pasted token connects, shows the welcome and a colored broadcast, clears, disconnects."""
    user = await api.register(name="Grace Tester")
    admin = await api.admin()
    async with chromium() as context:
        watched = await open_page(context, api.base_url + "/test")
        page = watched.page
        status = page.locator("#status")
        await expect(status).to_have_text("Disconnected")
        assert await color(status, "color") == "rgb(185, 28, 28)"  # red

        await page.fill("#token", user["access_token"])
        await page.click("#connect")
        await expect(status).to_have_text("Connected")
        assert await color(status, "color") == "rgb(21, 128, 61)"  # green

        welcome = page.locator("#messages li.evt-connection-established")
        await expect(welcome).to_have_count(1)
        await expect(welcome.locator(".msg-type")).to_have_text("connection.established")
        clock = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")
        await expect(welcome.locator(".msg-time")).to_have_text(clock)
        assert RFC3339.match(await welcome.locator(".msg-time").get_attribute("datetime"))
        await expect(welcome.locator(".msg-payload")).to_contain_text(WELCOME)
        await expect(page.locator("#count")).to_have_text("1")

        code, body, _ = await api.call("POST", "/ws/broadcast",
                                       {"message": "Deploy at 17:00", "priority": "high"},
                                       admin["access_token"])
        assert code == 200 and body["recipients"] == 1
        alert = page.locator("#messages li.evt-system-alert")
        await expect(alert).to_contain_text("Deploy at 17:00")
        await expect(page.locator("#count")).to_have_text("2")
        alert_color = await color(alert, "borderLeftColor")
        assert alert_color == "rgb(217, 119, 6)"  # amber for system.alert
        assert alert_color != await color(welcome, "borderLeftColor")
        await screenshot(page, "test-client-messages")

        await page.click("#clear")
        await expect(page.locator("#messages li")).to_have_count(0)
        await expect(page.locator("#count")).to_have_text("0")

        await page.click("#disconnect")
        await expect(status).to_have_text("Disconnected")
        await expect(page.locator("#connect")).to_be_enabled()
        await expect(page.locator("#close-info")).to_be_hidden()
        assert await page.evaluate("location.search") == ""
        stored = await page.evaluate("sessionStorage.getItem('events.test.token')")
        assert stored == user["access_token"]
        assert watched.errors == [] and watched.dialogs == []
    assert api.ctx.hub.get_stats()["total_clients"] == 0


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_test_client_login_send_and_server_close_explained(api):
    """The login form fills the token, sent messages get replies, and a 1008 close is explained."""
    user = await api.register(name="Closing User")
    admin = await api.admin()
    async with chromium() as context:
        watched = await open_page(context, api.base_url + "/test")
        page = watched.page
        await page.fill("#login-email", user["user"]["email"])
        await page.fill("#login-password", "password123")
        await page.click("#login-submit")
        await expect(page.locator("#login-result")).to_contain_text("Closing User")
        assert (await page.input_value("#token")).count(".") == 2  # a JWT

        await page.click("#connect")
        await expect(page.locator("#status")).to_have_text("Connected")
        await page.fill("#send-text", '{"type": "chat.message", "data": {}}')
        await page.click("#send")
        await expect(page.locator("#messages li.evt-error")).to_contain_text("unknown_type")

        await page.click("#preset-refresh")
        await page.click("#send")
        await expect(page.locator("#messages li.evt-auth-refreshed")).to_have_count(1)

        code, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                    token=admin["access_token"])
        assert code == 200
        await expect(page.locator("#status")).to_have_text("Disconnected")
        info = page.locator("#close-info")
        await expect(info).to_be_visible()
        await expect(info).to_contain_text("1008")
        await expect(info).to_contain_text("account deleted")
        await screenshot(page, "test-client-closed")
        assert watched.dialogs == []


# -- / -----------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_dashboard_live_stats_and_broadcast_reach_test_page(api):
    """The admin dashboard counts a new client live and its broadcast reaches an open /test page."""
    admin = await api.admin()
    user = await api.register(name="Linus Listener")
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#admin-view")).to_be_visible()
        await expect(page.locator("#ws-status")).to_have_text("Live")
        total = page.locator("#total-clients")
        await expect(total).to_have_text("1")  # the dashboard's own socket

        other = await api.ws(user["access_token"])
        await expect(total).to_have_text("2")
        await expect(page.locator("#unique-users")).to_have_text("2")
        await expect(page.locator("#by-role [data-role=user] .by-role-count")).to_have_text("1")
        # One node without Redis: the nodes table has this node alone, with both sockets.
        await expect(page.locator("#nodes-body tr")).to_have_count(1)
        await expect(page.locator("#nodes-body .node-clients")).to_have_text("2")
        await expect(page.locator("#nodes-total")).to_have_text("1")

        tester = await open_page(context, api.base_url + "/test")
        await tester.page.fill("#token", user["access_token"])
        await tester.page.click("#connect")
        await expect(tester.page.locator("#status")).to_have_text("Connected")
        await expect(total).to_have_text("3")

        await page.fill("#broadcast-message", "Maintenance window at 22:00 UTC")
        await page.select_option("#broadcast-priority", "critical")
        await page.click("#broadcast-send")
        await expect(page.locator("#broadcast-result")).to_have_text("Delivered to 3 recipients.")
        await expect(tester.page.locator("#messages li.evt-system-alert")).to_contain_text(
            "Maintenance window at 22:00 UTC")
        alert = await next_event(other)
        assert alert["type"] == "system.alert" and alert["data"]["priority"] == "critical"
        await expect(page.locator("#feed .evt-system-alert")).to_contain_text("[critical]")
        await expect(page.locator("#users-body tr")).to_have_count(2)
        await expect(page.locator("#chart svg.chart-svg path.line-conn")).to_have_count(1)
        await screenshot(page, "dashboard-admin")
        await screenshot(tester.page, "test-client-broadcast")

        other.close()
        await expect(total).to_have_text("2")
        assert page.url == api.base_url + "/"  # no token in the page URL
        assert "token" not in tester.page.url
        assert watched.errors == [] and tester.errors == []


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_dashboard_users_table_changes_role_and_deletes(api):
    """The users table changes a role and deletes a user over REST; the user's socket hears it."""
    admin = await api.admin()
    user = await api.register(name="Role Target")
    victim = await api.register(name="Soon Deleted")
    conn = await api.ws(user["access_token"])
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        row = page.locator(f"#users-body tr[data-user-id='{user['user']['id']}']")
        await expect(row).to_contain_text("Role Target")
        # The role change's event makes the table reload; wait for it, so that the reload
        # cannot re-render the row between the two clicks of the delete below.
        async with page.expect_response(lambda r: "/api/v1/users?page=" in r.url) as reloaded:
            await row.locator("select").select_option("admin")
            event = await next_event(conn)
        await (await reloaded.value).finished()
        assert event["type"] == "user.role.changed" and event["data"]["new_role"] == "admin"
        await expect(page.locator("#feed .evt-user-role-changed")).to_contain_text("user → admin")
        await expect(row.locator("select")).to_have_value("admin")

        doomed = page.locator(f"#users-body tr[data-user-id='{victim['user']['id']}']")
        button = doomed.get_by_role("button", name="Delete Soon Deleted")
        await button.click()
        await expect(button).to_have_text("Confirm")
        await button.click()
        await expect(doomed).to_have_count(0)
        await expect(page.locator("#feed .evt-user-deleted")).to_have_count(1)
        own = page.locator(f"#users-body tr[data-user-id='{admin['user']['id']}']")
        await expect(own.locator("select")).to_be_disabled()
        assert watched.dialogs == []
    conn.close()


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_dashboard_renders_hostile_name_as_text(api):
    """A user named like an HTML tag shows literally in the feed and table, and runs no script."""
    admin = await api.admin()
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#ws-status")).to_have_text("Live")
        tester = await open_page(context, api.base_url + "/test")
        await tester.page.fill("#token", admin["access_token"])
        await tester.page.click("#connect")
        await expect(tester.page.locator("#count")).to_have_text("1")

        await api.register(name=XSS_NAME)
        feed_item = page.locator("#feed .evt-user-created .feed-text")
        await expect(feed_item).to_contain_text(XSS_NAME)
        await expect(feed_item).to_be_visible()
        cell = page.locator("#users-body .user-name", has_text=XSS_NAME)
        await expect(cell).to_have_text(XSS_NAME)
        payload = tester.page.locator("#messages .evt-user-created .msg-payload")
        await expect(payload).to_contain_text(json.dumps(XSS_NAME))
        assert await page.locator("#feed img, #users-body img").count() == 0
        assert await tester.page.locator("#messages img").count() == 0
        await screenshot(page, "dashboard-xss")
        assert watched.dialogs == [] and tester.dialogs == []
        assert watched.errors == [] and tester.errors == []


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_dashboard_for_a_user_shows_profile_and_own_events(api):
    """A non-admin sees their profile, which updates live when an admin edits it."""
    admin = await api.admin()
    user = await api.register(name="Plain User")
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, user["user"]["email"])
        page = watched.page
        await expect(page.locator("#user-view")).to_be_visible()
        await expect(page.locator("#admin-view")).to_be_hidden()
        await expect(page.locator("#profile-name")).to_have_text("Plain User")
        await expect(page.locator("#profile-role")).to_have_text("user")
        await expect(page.locator("#my-feed .evt-connection-established")).to_have_count(1)

        code, _, _ = await api.call("PATCH", f"/api/v1/users/{user['user']['id']}",
                                    {"name": "Renamed User"}, admin["access_token"])
        assert code == 200
        await expect(page.locator("#profile-name")).to_have_text("Renamed User")
        await expect(page.locator("#my-feed .evt-user-updated")).to_contain_text("name")
        await expect(page.locator("#whoami-name")).to_have_text("Renamed User")
        session = json.loads(await page.evaluate("sessionStorage.getItem('events.session')"))
        assert session["access_token"] and session["refresh_token"]
        await screenshot(page, "dashboard-user")

        await page.click("#logout")
        await expect(page.locator("#login-view")).to_be_visible()
        assert await page.evaluate("sessionStorage.getItem('events.session')") is None
        assert watched.dialogs == []


@sqlite_only
@pytest.mark.settings(access_token_ttl=6)
@pytest.mark.gen_test(timeout=90)
async def test_short_lived_tokens_refresh_on_dashboard_and_expire_on_test_page(api):
    """The dashboard refreshes its token over its open socket; /test explains a 1008 expiry."""
    admin = await api.admin()
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        tester = await open_page(context, api.base_url + "/test")
        fresh = await api.login(admin["user"]["email"])
        await tester.page.fill("#token", fresh["access_token"])
        await tester.page.click("#connect")
        await expect(tester.page.locator("#status")).to_have_text("Connected")

        info = tester.page.locator("#close-info")
        await expect(info).to_contain_text('1008 "token expired"')
        await expect(tester.page.locator("#status")).to_have_text("Disconnected")

        # Two refreshes outlive the first token; the socket never had to reconnect.
        refreshed = page.locator("#feed .evt-auth-refreshed")
        await expect(refreshed).to_have_count(2, timeout=20_000)
        await expect(page.locator("#feed .evt-connection-established")).to_have_count(1)
        await expect(page.locator("#ws-status")).to_have_text("Live")
        assert watched.errors == []


# -- the Node script -----------------------------------------------------------------------------


def node_or_skip() -> str:
    node = shutil.which("node")
    require(node, "node is not installed")
    require((NODE_DIR / "node_modules" / "ws").is_dir(),
            "clients/node/node_modules is missing: run npm ci in clients/node")
    return node


async def run_node(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Runs the script without blocking the IOLoop that serves the app."""
    proc = await asyncio.create_subprocess_exec(
        node_or_skip(), str(NODE_DIR / "test-websocket.js"), *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode, out.decode(), err.decode()


def first_message(output: str) -> dict[str, Any]:
    block = output.split("📨 Message received:\n", 1)[1].split("\n\n", 1)[0]
    return json.loads(block)


@sqlite_only
@pytest.mark.gen_test(timeout=60)
async def test_node_script_prints_welcome_and_exits(api):
    """The Node script connects with TOKEN and WS_URL, prints the welcome like the seed, exits 0."""
    user = await api.register()
    code, out, err = await run_node("--seconds", "2", env={
        "TOKEN": user["access_token"], "WS_URL": api.ws_url + "/ws"})
    assert code == 0, err
    expected = ["🔌 Connecting to WebSocket...", "✅ WebSocket connected!", "📨 Message received:",
                "⏱️  Test timeout - closing connection", "🔌 WebSocket disconnected"]
    positions = [out.index(line) for line in expected]
    assert positions == sorted(positions), out
    welcome = first_message(out)
    assert welcome["type"] == "connection.established"
    assert welcome["data"]["message"] == WELCOME
    assert welcome["data"]["user_id"] == user["user"]["id"]
    assert RFC3339.match(welcome["timestamp"])
    assert '\n  "type": "connection.established",' in out  # pretty-printed, 2-space indent
    assert user["access_token"] not in out + err


@sqlite_only
@pytest.mark.gen_test(timeout=60)
async def test_node_script_logs_in_with_email_and_password(api):
    """With --email/--password/--url the script logs in first, then prints the welcome."""
    user = await api.register(name="Node Login")
    code, out, err = await run_node(
        "--email", user["user"]["email"], "--password", "password123", "--url", api.base_url,
        "--seconds", "1", env={"TOKEN": "", "WS_URL": ""})
    assert code == 0, err
    assert "Logged in as Node Login" in out
    assert first_message(out)["data"]["user_id"] == user["user"]["id"]


@sqlite_only
@pytest.mark.gen_test(timeout=60)
async def test_node_script_explains_401_and_server_close(api):
    """A bad token gets a clear 401 message, and a server close prints its code and reason."""
    code, _, err = await run_node("--seconds", "2", env={"TOKEN": "not-a-jwt",
                                                         "WS_URL": api.ws_url + "/ws"})
    assert code == 1
    assert "Unauthorized (HTTP 401)" in err

    user = await api.register()
    admin = await api.admin()
    proc_task = asyncio.ensure_future(run_node("--seconds", "20", env={
        "TOKEN": user["access_token"], "WS_URL": api.ws_url + "/ws"}))
    for _ in range(200):  # wait for the script's connection to register
        if api.ctx.hub.user_connection_count(user["user"]["id"]):
            break
        await asyncio.sleep(0.05)
    status, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                  token=admin["access_token"])
    assert status == 200
    code, out, _ = await proc_task
    assert code == 1
    assert "disconnected by the server (code 1008: account deleted)" in out
