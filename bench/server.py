"""Starts one server under test (pinned to its core) with its load generators, and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from bench.clock import Clock
from bench.modes import (
    PING_INTERVAL,
    PING_TIMEOUT,
    ROOT,
    SECRET,
    SERVER_CORE,
    TOKEN_TTL,
    Mode,
)
from bench.pool import Pool
from bench.procs import Proc, Worker, free_port, pinned
from bench.stats import parse_schedstat_ns, proc_cpu_seconds, proc_rss_kib
from bench.triggers import PeerTrigger, ProductTrigger, Trigger

__all__ = ["ServerRun"]


class ServerRun:
    """One server under test with its load generators: start, stop and its CPU and memory."""

    def __init__(self, name: str, mode: Mode, tmp: str, clock: Clock, deadline: float,
                 profile: bool) -> None:
        self.name, self.mode, self.tmp, self.clock = name, mode, tmp, clock
        self.deadline = deadline
        self.profile = profile
        self.port = free_port()
        self.server: Proc | None = None
        self.pool: Pool | None = None
        self.trigger: Trigger | None = None
        self.sources = [f"127.0.0.{i}" for i in range(2, 2 + 8)]
        self.result: dict[str, Any] = {"workloads": {}, "notes": []}
        self.seeded = None
        # Extra flags for the product (bench/overhead.py runs it with --metrics on and off).
        self.extra_args: list[str] = []
        self.data_dir = os.path.join(tmp, "product-data")

    def say(self, text: str) -> None:
        """Prints a progress line prefixed with the server's name."""
        self.clock.say(f"{self.name}: {text}")

    def time_left(self) -> float:
        """Returns the seconds left before this server's deadline."""
        return self.deadline - time.monotonic()

    # -- processes ---------------------------------------------------------------------

    def server_argv(self) -> list[str]:
        """Returns the command line that starts this server."""
        py = sys.executable
        common = ["--address", "127.0.0.1", "--port", str(self.port),
                  "--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT)]
        if self.name == "product":
            return [py, "main.py", "--data-dir", self.data_dir, "--jwt-secret", SECRET,
                    "--rate-limits", "off", "--access-token-ttl", str(TOKEN_TTL), *common,
                    *self.extra_args]
        budget = str(int(self.time_left()) + 60)
        if self.name == "websockets":
            return [py, "bench/peers/websockets_server.py", *common, "--max-seconds", budget]
        if self.name == "floor":
            return [py, "bench/peers/floor_server.py", *common, "--max-seconds", budget]
        if self.name == "tornado":
            return [py, "bench/peers/tornado_server.py", *common, "--max-seconds", budget]
        if self.name == "node":
            return ["node", "bench/peers/node/server.js", *common, "--max-seconds", budget]
        raise ValueError(self.name)

    async def start(self) -> None:
        """Seeds the product's database if needed, then starts the server, workers and trigger."""
        if self.name == "product":
            from bench.seed import seed

            self.say(f"seeding {self.mode.users} users + target + admin")
            self.seeded = await asyncio.to_thread(
                seed, self.data_dir, SECRET, self.mode.users, TOKEN_TTL)
        await self.launch()
        base = f"http://127.0.0.1:{self.port}"
        if self.name == "product":
            self.trigger = ProductTrigger(base, self.seeded.admin_token,
                                           os.path.join(self.data_dir, "app.db"))
        else:
            self.trigger = PeerTrigger(f"ws://127.0.0.1:{self.port}/control")
        await self.trigger.open()

    async def launch(self) -> None:
        """Starts the server pinned to its core, waits for its port, then the load generators."""
        self.server = Proc(self.name, pinned(SERVER_CORE, self.server_argv()),
                           os.path.join(self.tmp, f"{self.name}.log"))
        await self.server.start()
        await self._wait_port()
        workers = [Worker(i, os.path.join(self.tmp, f"{self.name}-loadgen-{i}.log"),
                          self.time_left() + 60) for i in range(self.mode.workers)]
        for w in workers:
            await w.start()
        self.pool = Pool(workers)

    async def _wait_port(self) -> None:
        """Waits until the server accepts TCP connections on its port."""
        for _ in range(200):
            if self.server.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.server.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port}")

    async def stop(self) -> None:
        """Closes the trigger and stops the workers and the server."""
        if self.trigger is not None:
            with contextlib.suppress(Exception):
                await self.trigger.close()
        if self.pool is not None:
            for w in self.pool.workers:
                with contextlib.suppress(Exception):
                    await w.call({"cmd": "exit"}, 20)
                await w.stop()
        if self.server is not None:
            await self.server.stop()

    # -- measurements ------------------------------------------------------------------

    def cpu(self) -> float:
        """Returns the server process's CPU seconds so far."""
        return proc_cpu_seconds(self.server.pid)

    def rss(self) -> int:
        """Returns the server process's resident memory in KiB."""
        return proc_rss_kib(self.server.pid)

    async def _settle(self, seconds: float) -> None:
        """Waits for seconds so that the server and clients go quiet."""
        await asyncio.sleep(seconds)

    def loop_cpu(self) -> float:
        """On-CPU seconds of the server's main thread (the IOLoop: HTTP, JWT, hub fan-out)."""
        pid = self.server.pid
        with open(f"/proc/{pid}/task/{pid}/schedstat", encoding="ascii") as fh:
            return parse_schedstat_ns(fh.read()) / 1e9

    def _spy(self, tag: str, seconds: int) -> subprocess.Popen | None:
        """Starts py-spy on the server (raw folded stacks into bench/results/), or None."""
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(spy):
            self.say("py-spy not found; no profile")
            return None
        out = os.path.join(ROOT, "bench", "results", f"profile-{tag}-{int(time.time())}.txt")
        self.say(f"profiling into {out}")
        return subprocess.Popen([spy, "record", "-p", str(self.server.pid), "-f", "raw",
                                 "-o", out, "-d", str(seconds), "-r", "500", "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
