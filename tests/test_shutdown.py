"""Graceful shutdown of the real server process: sockets close with 1001, exit status 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import next_event, wait_closed
from serverproc import free_port
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "shutdown-test-secret-" + "y" * 32


async def wait_for_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    """Polls the process until it exits; returns its status, or None after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return proc.poll()


async def wait_for_health(base: str, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Polls /health until the server answers 200."""
    client = AsyncHTTPClient()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        assert proc.poll() is None, "server exited during start-up"
        try:
            response = await client.fetch(f"{base}/health", raise_error=False, request_timeout=1)
            if response.code == 200:
                return
        except OSError:
            pass
        assert loop.time() < deadline, "server did not become healthy"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=40)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_every_socket_with_1001_and_exits_0(tmp_path, sig):
    """On SIGTERM or SIGINT the server closes open WebSockets with 1001 and exits 0 within
    seconds, and its log never contains the access token."""
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET", "PORT")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--jwt-secret", SECRET],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_for_health(base, proc)
        body = {"name": "Shut Down", "email": "shutdown@example.com", "password": "password123"}
        response = await AsyncHTTPClient().fetch(HTTPRequest(
            f"{base}/api/v1/auth/register", method="POST", body=json.dumps(body),
            headers={"Content-Type": "application/json"}))
        token = json.loads(response.body)["data"]["access_token"]
        conns = [await websocket_connect(f"ws://127.0.0.1:{port}/ws?token={token}")
                 for _ in range(2)]
        for conn in conns:
            assert (await next_event(conn))["type"] == "connection.established"

        proc.send_signal(sig)
        for conn in conns:
            code, _ = await wait_closed(conn, timeout=5)
            assert code == 1001
        assert await wait_for_exit(proc, 5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    assert token not in log_text
    assert "token=REDACTED" in log_text  # the /ws request was logged, with the token redacted
    assert "shutting down" in log_text
