"""The server (main.py) as a real process for the client's tests, and a relay to cut."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

import events_client

__all__ = ["ROOT", "SECRET", "ADMIN", "LiveServer", "Gate", "free_port", "unique", "admin_tokens"]

ROOT = Path(__file__).resolve().parents[3]  # the repository: tests -> python -> clients
SECRET = "client-tests-secret-" + "x" * 40
ADMIN = ("boss@example.com", "adminpass1")
# Generous limits: the tests publish bursts and log in many users from one address.
FLAGS = ("--rate-limits=off", "--inbound-rate=1000", "--inbound-burst=1000")
# The server runs on this interpreter: the tests' own by default, another one (the server's
# virtualenv) to test the client with other versions of its dependencies.
SERVER_PYTHON = os.environ.get("EVENTS_SERVER_PYTHON", sys.executable)


def free_port() -> int:
    """Returns a loopback port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str = "t") -> str:
    """Returns a short name no other test uses (emails, rooms, alert tags)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class LiveServer:
    """One data directory and the successive main.py processes serving it on one port."""

    def __init__(self, directory: Path, *flags: str) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.flags = flags
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.env = {**os.environ, "JWT_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}

    def create_admin(self) -> None:
        """Creates the admin account with main.py's create-admin command."""
        result = subprocess.run(
            [SERVER_PYTHON, str(ROOT / "main.py"), "create-admin", f"--email={ADMIN[0]}",
             f"--password={ADMIN[1]}", f"--data-dir={self.data}"],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr

    def start(self) -> LiveServer:
        """Starts a process on the port and data; returns once /health answers 200."""
        self.runs += 1
        log = open(self.directory / f"server{self.runs}.log", "wb")
        self.proc = subprocess.Popen(
            [SERVER_PYTHON, str(ROOT / "main.py"), f"--port={self.port}",
             f"--data-dir={self.data}", *FLAGS, *self.flags],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.output()}")
            time.sleep(0.05)
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        """Returns the latest process's log."""
        path = self.directory / f"server{self.runs}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stops the process with a signal (SIGTERM drains; SIGKILL is a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Gate:
    """A TCP relay in front of the server: `cut()` resets every connection through it at
    once (a network failure, as the client sees it) and refuses new ones until `open()`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.accepting = True
        self.accepted = 0  # connections relayed so far
        self.refused = 0  # connections turned away while cut
        # Cleared by hold(): bytes from the client wait in the relay instead of going on.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.AbstractServer | None = None
        self.url = ""

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Resets every relayed connection and refuses new ones."""
        self.accepting = False
        for down, up in list(self._pairs):
            down.transport.abort()
            up.transport.abort()
        self._pairs.clear()

    def open(self) -> None:
        """Lets new connections through again."""
        self.accepting = True

    def hold(self) -> None:
        """Keeps what clients send in the relay (the server's side still flows)."""
        self._flowing.clear()

    def release(self) -> None:
        """Passes on what was held and lets client bytes flow again."""
        self._flowing.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(_pipe(reader, up_writer, self._flowing), _pipe(up_reader, writer))
        self._pairs.discard(pair)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                flowing: asyncio.Event | None = None) -> None:
    try:
        while data := await source.read(65536):
            if flowing is not None:
                await flowing.wait()
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()  # what was written still goes out first; cut() is the abrupt end


async def admin_tokens(url: str) -> events_client.Tokens:
    """Logs the admin in."""
    return await events_client.login(url, *ADMIN)
