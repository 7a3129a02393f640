"""Runs main.py in a subprocess for tests that need a whole process (fds, RSS, timeouts)."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from conftest import TEST_SECRET
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

__all__ = ["ServerProcess", "free_port", "wait_for", "http_get", "call"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """Returns a loopback port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Polls condition until it holds or timeout passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def http_get(sock: socket.socket, path: str = "/health", timeout: float = 5.0) -> bytes:
    """Sends a keep-alive GET on sock and returns the response (head and body)."""
    sock.settimeout(timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class ServerProcess:
    """main.py serving on a free port, optionally with a low descriptor limit."""

    def __init__(self, tmp_path: str, *args: str, nofile: int | None = None,
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()  # a restart passes the port its clients know
        self.log_path = os.path.join(tmp_path, "server.log")
        environ = {**os.environ, "JWT_SECRET": TEST_SECRET, "PYTHONUNBUFFERED": "1",
                   **(env or {})}

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "main.py"), f"--port={self.port}",
             f"--data-dir={os.path.join(tmp_path, 'data')}", *args],
            cwd=ROOT, env=environ, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit)
        if not wait_for(self._listening, 20):
            output = self.output()
            self.stop()
            raise RuntimeError(f"server did not start: {output}")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return http_get(s).startswith(b"HTTP/1.1 200")
        except OSError:
            return self.proc.poll() is not None

    def connect(self, timeout: float = 2.0) -> socket.socket:
        """Opens a TCP connection to the server."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def rss_kib(self) -> int:
        """Returns the server's resident set size in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """Returns the server's user plus system CPU time so far."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        """Returns what the server has logged so far."""
        self.log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL) and closes its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


async def call(port: int, method: str, path: str, body: Any = None,
               token: str | None = None) -> tuple[int, Any]:
    """Sends one JSON request to a server process (or a node); returns (status, parsed body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = HTTPRequest(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                          body=json.dumps(body) if body is not None else None,
                          request_timeout=30)
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    return response.code, json.loads(response.body) if response.body else None
