"""The server a fuzz run walks: main.py in a child process with an admin and an API key made
by its own command line, and a PostgreSQL schema of its own when it runs on PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

__all__ = ["FuzzServer", "PostgresSchema", "POSTGRES_URL", "IN_CI", "LOG_PROBLEMS"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Lines of the server's log that fail the run: a traceback, or anything logged as an error.
LOG_PROBLEMS = ("Traceback (most recent call last)", " ERROR ", " CRITICAL ")
ADMIN_EMAIL = "fuzz-admin@example.com"


def free_port() -> int:
    """Returns a loopback port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """Sends a GET (or a JSON POST when body is given); returns (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class PostgresSchema:
    """A schema of the test database for one run (PGOPTIONS points the server at it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls) -> PostgresSchema | None:
        """Creates a fresh schema; None when PostgreSQL cannot be reached."""
        schema = cls(f"fuzz_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        try:
            schema._sql(f"CREATE SCHEMA {schema.name}")
        except Exception:
            return None
        return schema

    def env(self) -> dict[str, str]:
        """Returns the environment that makes a server use this schema."""
        return {"PGOPTIONS": f"-c search_path={self.name}"}

    def drop(self) -> None:
        """Drops the schema and everything in it."""
        try:
            self._sql(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
        except Exception as exc:
            print(f"fuzz-api: could not drop schema {self.name}: {exc}")

    @staticmethod
    def _sql(statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()


class FuzzServer:
    """main.py on a free port, with the fuzzer's admin account and API key."""

    def __init__(self, workdir: str, database_url: str | None = None,
                 env: dict[str, str] | None = None, rate_limits: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "server.log")
        self.options = [f"--data-dir={os.path.join(workdir, 'data')}"]
        if database_url:
            self.options.append(f"--database-url={database_url}")
        self.rate_limits = rate_limits
        self.env = {**os.environ, **(env or {}), "JWT_SECRET": secrets.token_urlsafe(48),
                    "PYTHONUNBUFFERED": "1"}
        self.admin_password = secrets.token_urlsafe(24)
        self.admin: dict[str, Any] = {}
        self.key: dict[str, Any] = {}
        self.proc: subprocess.Popen | None = None

    def _cli(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        """Runs a main.py command on the server's storage; returns its standard output."""
        result = subprocess.run([sys.executable, "main.py", *args, *self.options], cwd=ROOT,
                                env={**self.env, **(extra_env or {})}, capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"main.py {args[0]} failed: {result.stderr or result.stdout}")
        return result.stdout

    def start(self) -> None:
        """Creates the admin and the API key, starts the server and logs the admin in."""
        self._cli("create-admin", f"--email={ADMIN_EMAIL}", "--name=Fuzz Admin",
                  extra_env={"ADMIN_PASSWORD": self.admin_password})
        self.key = json.loads(self._cli("api-key", "create", "--name=fuzz", "--json"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "main.py", f"--port={self.port}", *self.options,
             f"--rate-limits={'on' if self.rate_limits else 'off'}",
             "--access-token-ttl=7200"],  # the admin's token outlives the longest run
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.output()}")
            time.sleep(0.1)
        status, body = _request(self.base + "/api/v1/auth/login",
                                {"email": ADMIN_EMAIL, "password": self.admin_password})
        if status != 200:
            raise RuntimeError(f"the fuzzer's admin cannot log in: {status} {body}")
        self.admin = body["data"]

    def healthy(self) -> bool:
        """Tells whether /health answers 200."""
        try:
            return _request(self.base + "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def fuzzer_env(self) -> dict[str, str]:
        """Returns what proof/fuzz_hooks.py reads: the server and the fuzzer's credentials."""
        return {"FUZZ_BASE_URL": self.base, "FUZZ_ADMIN_TOKEN": self.admin["access_token"],
                "FUZZ_ADMIN_ID": str(self.admin["user"]["id"]), "FUZZ_API_KEY": self.key["key"],
                "FUZZ_API_KEY_ID": str(self.key["id"])}

    def output(self) -> str:
        """Returns what the server has logged so far."""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def problems(self) -> list[str]:
        """Returns what is wrong with the server now: not answering, or a bad log line."""
        found = [] if self.healthy() else ["the server does not answer /health"]
        bad = [line for line in self.output().splitlines()
               if any(marker in line for marker in LOG_PROBLEMS)]
        if bad:
            found.append(f"{len(bad)} error line(s) in the server's log, first: {bad[0]}")
        return found

    def stop(self) -> list[str]:
        """Stops the server with SIGTERM; returns a problem if it did not exit cleanly."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            return ["the server did not stop within 20 s of SIGTERM"]
        return [] if code == 0 else [f"the server exited with status {code} on SIGTERM"]

    def kill(self) -> None:
        """Makes sure the server is gone and its log closed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
