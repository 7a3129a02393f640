"""One server under test (pinned to its core) with its load generators: start, stop, and the
server's CPU and memory."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from bench.modes import (
    PING_INTERVAL,
    PING_TIMEOUT,
    ROOT,
    SECRET,
    SERVER_CORE,
    TOKEN_TTL,
    Clock,
    Mode,
)
from bench.pool import Pool
from bench.procs import Proc, free_port
from bench.seed import Seeded, seed
from bench.stats import parse_schedstat_ns, proc_cpu_seconds, proc_rss_kib
from bench.triggers import PeerTrigger, ProductTrigger, Trigger

__all__ = ["PEERS", "product_argv", "ServerRun", "run_guarded", "failure"]

_PY, _PEERS = sys.executable, "bench/peers/"
PEERS = {  # how each peer server starts (then the common options and --max-seconds)
    "websockets": [_PY, _PEERS + "websockets_server.py"],
    "tornado": [_PY, _PEERS + "tornado_server.py"],
    "node": ["node", _PEERS + "node/server.js"],
    "floor": [_PY, _PEERS + "websockets_server.py", "--floor"],
    "socketio": [_PY, _PEERS + "socketio_server.py"],
    "socketio-node": ["node", _PEERS + "node/socketio_server.js"],
}
_COMMON = ["--address", "127.0.0.1", "--ping-interval", str(PING_INTERVAL), "--ping-timeout",
           str(PING_TIMEOUT)]


def product_argv(port: int, data_dir: str, *extra: str) -> list[str]:
    """Returns the command line that starts this product with the benchmark's settings."""
    return [_PY, "main.py", *_COMMON, "--port", str(port), "--data-dir", data_dir,
            "--jwt-secret", SECRET, "--rate-limits", "off", "--access-token-ttl", str(TOKEN_TTL),
            *extra]


def failure(exc: BaseException) -> str:
    """Returns how a failed step is reported."""
    return f"{type(exc).__name__}: {exc}"


class ServerRun:
    """One server under test with its load generators: start, stop and its CPU and memory."""

    data_name = "product-data"  # the product's data dir under the run's tmp dir

    def __init__(self, name: str, mode: Mode, tmp: str, clock: Clock, deadline: float,
                 profile: bool = False, extra_args: tuple[str, ...] = ()) -> None:
        self.name, self.mode, self.tmp, self.clock = name, mode, tmp, clock
        self.deadline, self.profile, self.extra_args = deadline, profile, extra_args
        self.port = free_port()
        self.server: Proc | None = None
        self.pool: Pool | None = None
        self.trigger: Trigger | None = None
        self.seeded: Seeded | None = None
        self.result: dict[str, Any] = {"workloads": {}, "notes": []}
        self.data_dir = os.path.join(tmp, self.data_name)

    def say(self, text: str) -> None:
        """Prints a progress line prefixed with the server's name."""
        self.clock.say(f"{self.name}: {text}")

    def time_left(self) -> float:
        """Returns the seconds left before this server's deadline."""
        return self.deadline - time.monotonic()

    def server_argv(self) -> list[str]:
        """Returns the command line that starts this server."""
        if self.name == "product":
            return product_argv(self.port, self.data_dir, *self.extra_args)
        return [*PEERS[self.name], *_COMMON, "--port", str(self.port), "--max-seconds",
                str(int(self.time_left()) + 60), *self.extra_args]

    def tokens(self) -> list[str]:
        """Returns the tokens clients connect with: each seeded user's tabs, or any for a peer."""
        if self.seeded is None:
            return [""]
        return [t for t in self.seeded.user_tokens for _ in range(self.mode.tabs)]

    async def start(self, users: int | None = None, trigger: bool = True,
                    rooms: tuple[str, ...] = ()) -> None:
        """Seeds the product's database (users, rooms), starts the server and its load
        generators, and opens the trigger."""
        if self.name == "product":
            users = self.mode.users if users is None else users
            self.say(f"seeding {users} users + target + admin" + (
                f" and {len(rooms)} rooms" if rooms else ""))
            self.seeded = await asyncio.to_thread(seed, self.data_dir, SECRET, users, TOKEN_TTL,
                                                  "", rooms)
        await self.launch()
        if not trigger:
            return
        if self.name == "product":
            assert self.seeded is not None
            self.trigger = ProductTrigger(f"http://127.0.0.1:{self.port}",
                                          self.seeded.admin_token,
                                          os.path.join(self.data_dir, "app.db"))
        else:
            self.trigger = PeerTrigger(f"ws://127.0.0.1:{self.port}/control")
        await self.trigger.open()

    async def launch(self, log: str = "") -> None:
        """Starts the server pinned to its core, waits for its port, then the load generators
        (once)."""
        self.server = Proc(self.name, self.server_argv(),
                           os.path.join(self.tmp, f"{self.name}{log}.log"), SERVER_CORE)
        await self.server.start()
        await self.server.wait_port(self.port)
        if self.pool is None:
            self.pool = await Pool.start(self.mode.workers, self.tmp, self.name,
                                         self.time_left() + 60)

    async def stop(self) -> None:
        """Closes the trigger and stops the load generators and the server."""
        if self.trigger is not None:
            await self.trigger.close()
        if self.pool is not None:
            await self.pool.stop()
        if self.server is not None:
            await self.server.stop()

    def cpu(self) -> float:
        """Returns the server process's CPU seconds so far."""
        return proc_cpu_seconds(self.server.pid)

    def rss(self) -> int:
        """Returns the server process's resident memory in KiB."""
        return proc_rss_kib(self.server.pid)

    def loop_cpu(self) -> float:
        """On-CPU seconds of the server's main thread (the IOLoop: HTTP, JWT, hub fan-out)."""
        pid = self.server.pid
        with open(f"/proc/{pid}/task/{pid}/schedstat", encoding="ascii") as fh:
            return parse_schedstat_ns(fh.read()) / 1e9

    def spy(self, tag: str, seconds: int) -> subprocess.Popen | None:
        """Starts py-spy on the server (raw folded stacks into bench/results/), or None."""
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(_PY), "py-spy")
        if not os.path.exists(spy):
            self.say("py-spy not found; no profile")
            return None
        out = os.path.join(ROOT, "bench", "results", f"profile-{tag}-{int(time.time())}.txt")
        self.say(f"profiling into {out}")
        return subprocess.Popen([spy, "record", "-p", str(self.server.pid), "-f", "raw",
                                 "-o", out, "-d", str(seconds), "-r", "500", "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_guarded(bench: Any, label: str) -> dict[str, Any]:
    """Runs bench (anything with run, stop and result) and stops it; a failure is reported in
    its result, not raised."""
    try:
        return await bench.run()
    except Exception as exc:  # noqa: BLE001 - a failed server is reported, not fatal
        bench.clock.say(f"{label}: FAILED {failure(exc)}")
        return {**bench.result, "error": failure(exc)}
    finally:
        await bench.stop()
