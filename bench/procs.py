"""Child processes of a run: pinning to a core, limits, start and stop, and the load generators.

Children get SIGTERM if the orchestrator dies (PR_SET_PDEATHSIG) and are killed on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import resource
import shutil
import signal
import socket
import sys
from typing import Any

from bench.modes import CLIENT_CORE, NOFILE, ROOT

__all__ = ["pinned", "free_port", "Proc", "Worker"]


def _child_setup() -> None:
    """Runs in each child before exec: ulimit -n 20000 and SIGTERM when this process dies."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def pinned(core: int, argv: list[str]) -> list[str]:
    """Returns argv prefixed with taskset to pin it to core, if taskset exists."""
    return (["taskset", "-c", str(core)] + argv) if shutil.which("taskset") else argv


def free_port() -> int:
    """Returns a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: str, cwd: str = ROOT,
                 pipes: bool = False) -> None:
        self.name, self.argv, self.log_path, self.cwd, self.pipes = name, argv, log_path, cwd, pipes
        self.proc: asyncio.subprocess.Process | None = None
        self._log = None

    async def start(self) -> None:
        """Starts the process with its output appended to the log file."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, preexec_fn=_child_setup,
            stdin=asyncio.subprocess.PIPE if self.pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if self.pipes else self._log,
            stderr=self._log, limit=256 * 1024 * 1024,
        )

    @property
    def pid(self) -> int:
        """Returns the process id of the started process."""
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, grace: float = 8.0) -> None:
        """Stops the process (SIGTERM, then SIGKILL after grace seconds) and closes its log."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
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
    """A load-generator process spoken to with JSON lines."""

    def __init__(self, index: int, log_path: str, max_seconds: float) -> None:
        argv = pinned(CLIENT_CORE, [sys.executable, "-m", "bench.loadgen",
                                     "--max-seconds", str(int(max_seconds))])
        super().__init__(f"loadgen-{index}", argv, log_path, pipes=True)
        self.index = index
        self._next = 0
        self._lock = asyncio.Lock()

    async def call(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Sends one JSON command and returns the worker's JSON reply."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        async with self._lock:
            self._next += 1
            cmd = {**cmd, "id": self._next}
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited (see {self.log_path})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply
