"""Child processes of a run, pinned to a core: servers, and load generators spoken to as a
pool. They get SIGTERM if the orchestrator dies (PR_SET_PDEATHSIG) and are killed on stop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import sys
import time
from array import array
from pathlib import Path
from typing import Any

from bench.modes import CLIENT_CORE, NOFILE, ROOT, SOURCES
from bench.stats import add_counts, proc_cpu_seconds
from localcluster.procs import port_open

__all__ = ["pin", "prepare_process", "Proc", "Worker", "Pool"]


def _raise_nofile() -> None:
    """Raises this process's open-file limit to NOFILE, where allowed."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _child_setup() -> None:
    """Runs in each child before exec: the open-file limit and SIGTERM when this process dies."""
    _raise_nofile()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def pin(pid: int, core: int) -> None:
    """Pins a running process (0: this one) to core, where affinity is available."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(pid, {core})


def prepare_process() -> None:
    """Pins the orchestrator to the client core and raises its open-file limit."""
    pin(0, CLIENT_CORE)
    _raise_nofile()


class Proc:
    """A child process pinned to a core, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: str, core: int | str | None = None,
                 pipes: bool = False, cwd: str = ROOT, env: dict[str, str] | None = None) -> None:
        if core is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(core), *argv]
        self.name, self.argv, self.log_path, self.pipes = name, argv, log_path, pipes
        self.cwd, self.env = cwd, env  # env: variables added to this process's own
        self.proc: asyncio.subprocess.Process | None = None
        self._log: Any = None

    async def start(self) -> None:
        """Starts the process with its output appended to the log file."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        pipe = asyncio.subprocess.PIPE
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, preexec_fn=_child_setup,
            env={**os.environ, **self.env} if self.env else None,
            stdin=pipe if self.pipes else asyncio.subprocess.DEVNULL,
            stdout=pipe if self.pipes else self._log, stderr=self._log, limit=256 << 20)

    @property
    def pid(self) -> int:
        """Returns the process id of the started process."""
        assert self.proc is not None
        return self.proc.pid

    async def wait_port(self, port: int) -> None:
        """Waits until the process accepts TCP connections on port; raises if it exits first."""
        for _ in range(300):
            if self.proc is None or self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            if port_open("127.0.0.1", port):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {port}")

    async def stop(self, grace: float = 8.0) -> None:
        """Stops the process (SIGTERM, then SIGKILL after grace seconds) and closes its log."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()


class Worker(Proc):
    """A load-generator process (bench/loadgen) spoken to with JSON lines."""

    def __init__(self, index: int, log_path: str, max_seconds: float) -> None:
        argv = [sys.executable, "-m", "bench.loadgen", "--max-seconds", str(int(max_seconds))]
        super().__init__(f"loadgen-{index}", argv, log_path, CLIENT_CORE, pipes=True)
        self.index, self._lock = index, asyncio.Lock()  # one command at a time: replies in order

    async def call(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Sends one JSON command and returns the worker's JSON reply."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        async with self._lock:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited (see {self.log_path})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    async def stop(self, grace: float = 8.0) -> None:
        """Asks the worker to exit (it closes its clients), then stops the process."""
        with contextlib.suppress(Exception):
            await self.call({"cmd": "exit"}, 20)
        await super().stop(grace)


class Pool:
    """All load-generator processes of one server's run."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def stop(self) -> None:
        """Stops every worker."""
        for w in self.workers:
            await w.stop()

    async def all(self, cmd: dict[str, Any], timeout: float = 120.0) -> list[dict[str, Any]]:
        """Sends one command to every worker and returns their replies."""
        return list(await asyncio.gather(*(w.call(cmd, timeout) for w in self.workers)))

    async def summed(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Sends one command to every worker and returns their replies added up."""
        return functools.reduce(add_counts, await self.all(cmd, timeout), {})

    async def stats(self) -> dict[str, Any]:
        """Returns the workers' receive counters added up (the last receipt: the latest)."""
        replies = await self.all({"cmd": "stats"})
        return {**functools.reduce(add_counts, replies, {}),
                "last_recv": max(r["last_recv"] for r in replies)}

    async def wait_received(self, expected: int, limit: float = 60.0,
                            stall: float = 3.0) -> dict[str, Any]:
        """Polls until expected messages arrived, or none for stall seconds."""
        last, quiet_since = -1, time.monotonic()
        stop = quiet_since + limit
        while True:
            st, now = await self.stats(), time.monotonic()
            if st["received"] >= expected or now > stop or now - quiet_since > stall:
                return st
            if st["received"] != last:
                last, quiet_since = st["received"], now
            await asyncio.sleep(0.1)

    async def latencies(self, tmp: str, tag: str) -> array:
        """Collects every worker's recorded latencies (seconds) through files in tmp."""
        values = array("d")
        paths = [os.path.join(tmp, f"lat-{tag}-{w.index}.bin") for w in self.workers]
        await asyncio.gather(*(w.call({"cmd": "dump", "path": p})
                               for w, p in zip(self.workers, paths, strict=True)))
        for path in paths:
            values.frombytes(Path(path).read_bytes())
            os.unlink(path)
        return values

    def cpu_seconds(self) -> float:
        """Returns the CPU seconds the workers have used so far."""
        return sum(proc_cpu_seconds(w.pid) for w in self.workers)

    def shares(self, count: int, offset: int = 0) -> list[tuple[Worker, range]]:
        """Splits clients offset .. offset + count - 1 over the workers, in order."""
        n, out, start = len(self.workers), [], offset
        for i, w in enumerate(self.workers):
            k = count // n + (i < count % n)
            out.append((w, range(start, start + k)))
            start += k
        return [(w, part) for w, part in out if part]

    async def connect(self, port: int, tokens: list[str], count: int, offset: int = 0,
                      timeout: float = 120.0, rooms: list[str] | None = None,
                      **options: Any) -> dict[str, Any]:
        """Opens count connections (room clients with rooms); options go to loadgen's connect."""
        calls = []
        for w, mine in self.shares(count, offset):
            cmd = {"cmd": "connect", "host": "127.0.0.1", "port": port, "count": len(mine),
                   "tokens": [tokens[i % len(tokens)] for i in mine], "sources": SOURCES,
                   "concurrency": 32, "timeout": timeout, "small_rcvbuf_every": 50, **options}
            if rooms:
                cmd["rooms"] = [rooms[i % len(rooms)] for i in mine]
            calls.append(w.call(cmd, timeout + 30))
        began = time.time()
        total = functools.reduce(add_counts, await asyncio.gather(*calls),
                                 {"ok": 0, "errors": {}, "handshake_ms_sum": 0.0})
        ok = total["ok"]
        return {"ok": ok, "failed": count - ok, "wall_s": time.time() - began,
                "errors": total["errors"],
                "handshake_ms_mean": total["handshake_ms_sum"] / ok if ok else None}
