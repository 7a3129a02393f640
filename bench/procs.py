"""Child processes of a run, pinned to a core: servers, load generators, and their limits.

Children get SIGTERM if the orchestrator dies (PR_SET_PDEATHSIG) and are killed on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import socket
import sys
from typing import Any

from bench.modes import CLIENT_CORE, NOFILE, ROOT

__all__ = ["prepare_process", "free_port", "Proc", "Worker"]


def _raise_nofile() -> None:
    """Raises this process's open-file limit to NOFILE, where allowed."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _child_setup() -> None:
    """Runs in each child before exec: the open-file limit and SIGTERM when this process dies."""
    _raise_nofile()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def prepare_process() -> None:
    """Pins the orchestrator to the client core and raises its open-file limit."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {CLIENT_CORE})
    _raise_nofile()


def free_port() -> int:
    """Returns a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process pinned to a core, its output in a log file; stopped with SIGTERM, then
    SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: str, core: int | None = None,
                 pipes: bool = False) -> None:
        if core is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(core), *argv]
        self.name, self.argv, self.log_path, self.pipes = name, argv, log_path, pipes
        self.proc: asyncio.subprocess.Process | None = None
        self._log: Any = None

    async def start(self) -> None:
        """Starts the process with its output appended to the log file."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        pipe = asyncio.subprocess.PIPE
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, preexec_fn=_child_setup,
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
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
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
        self.index = index
        self._next = 0
        self._lock = asyncio.Lock()

    async def call(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Sends one JSON command and returns the worker's JSON reply."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        async with self._lock:
            self._next += 1
            self.proc.stdin.write((json.dumps({**cmd, "id": self._next}) + "\n").encode())
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
