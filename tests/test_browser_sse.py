"""A real EventSource in Chromium: it survives a server restart by itself (it reconnects and
sends its last id), and every event arrives exactly once, in order."""

from __future__ import annotations

import asyncio

import pytest
from serverproc import ServerProcess, call
from test_browser import chromium

LISTEN = """async ({token}) => {
  window.got = [];
  window.ids = [];
  window.opens = 0;
  window.recoveries = [];
  const source = new EventSource('/sse?token=' + encodeURIComponent(token));
  source.addEventListener('system.alert', (e) => {
    window.got.push(Number(JSON.parse(e.data).data.message));
    window.ids.push(e.lastEventId);
  });
  source.addEventListener('recovery', (e) => window.recoveries.push(JSON.parse(e.data).data));
  source.onopen = () => { window.opens += 1; };
  window.source = source;
}"""


async def until(page, script: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(script):
        assert loop.time() < deadline, f"page never reached: {script}"
        await asyncio.sleep(0.1)


async def broadcast(port: int, token: str, numbers) -> None:
    for n in numbers:
        status, body = await call(port, "POST", "/ws/broadcast", {"message": str(n)}, token)
        assert status == 200, body


@pytest.mark.gen_test(timeout=180)
async def test_an_eventsource_survives_a_server_restart_with_every_event_once(tmp_path):
    """EventSource reconnects after a SIGTERM restart on its own, resuming from its last id:
    alerts 1-10 arrive once each, in order, and the resume reports them recovered."""
    import subprocess
    import sys

    from conftest import TEST_SECRET
    from serverproc import ROOT

    result = subprocess.run([sys.executable, f"{ROOT}/main.py", "create-admin",
                             "--email=boss@example.com", "--password=adminpass1",
                             f"--data-dir={tmp_path / 'data'}"], cwd=ROOT,
                            env={"JWT_SECRET": TEST_SECRET, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    server = ServerProcess(str(tmp_path), "--rate-limits=off")
    port = server.port
    try:
        status, body = await call(port, "POST", "/api/v1/auth/login",
                                  {"email": "boss@example.com", "password": "adminpass1"})
        admin = body["data"]["access_token"]
        async with chromium() as context:
            page = await context.new_page()
            await page.goto(f"http://127.0.0.1:{port}/test")
            await page.evaluate(LISTEN, {"token": admin})
            await until(page, "window.recoveries.length === 1")
            await broadcast(port, admin, range(1, 6))
            await until(page, "window.got.length === 5")
            # Until alerts 6-10 are sent, the browser's reconnections fail as network errors
            # (EventSource keeps retrying), so the one that succeeds must recover all five.
            refused = []

            async def refuse(route) -> None:
                refused.append(route.request.url)
                await route.abort()

            await page.route("**/sse?*", refuse)
            server.stop()
            server = ServerProcess(str(tmp_path), "--rate-limits=off", port=port)
            status, body = await call(port, "POST", "/api/v1/auth/login",
                                      {"email": "boss@example.com", "password": "adminpass1"})
            admin_again = body["data"]["access_token"]
            await broadcast(port, admin_again, range(6, 11))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not refused:  # the browser did try while the alerts were being sent
                assert loop.time() < deadline, "EventSource never tried to reconnect"
                await asyncio.sleep(0.1)
            await page.unroute("**/sse?*")
            await until(page, "window.got.length >= 10", timeout=60)
            await asyncio.sleep(0.5)
            assert await page.evaluate("window.got") == list(range(1, 11))
            assert await page.evaluate("window.opens") == 2
            recoveries = await page.evaluate("window.recoveries")
            assert recoveries[-1]["streams"] == [{"channel": None, "recovered": True,
                                                  "missed": 5}]
            ids = await page.evaluate("window.ids")
            assert len(set(ids)) == 10
    finally:
        server.stop()
