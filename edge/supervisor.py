"""`--workers N`: N server processes on one port, as the nodes of one Redis cluster.

Each worker is this same command with `--worker=<i>`: it binds the port with SO_REUSEPORT, so
the kernel spreads new connections over the workers, and it is a node of the cluster like any
other (`--broker=redis`: events, presence, `/ws/stats` and controls span the workers; no
inter-process bus of its own). The parent only supervises: it starts the workers, starts a
worker again when one dies (backing off if it keeps dying), and on SIGTERM or SIGINT passes
SIGTERM on to every worker, which drains its sockets as a lone server does, then waits for them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["Supervisor", "worker_count", "without_workers"]

log = logging.getLogger("server")

RESTART_MIN, RESTART_MAX = 1.0, 30.0  # seconds before a dead worker starts again (doubling)
STABLE = 60.0  # a worker that lived this long resets its back-off
STOP_TIMEOUT = 20.0  # seconds workers get to drain after SIGTERM before SIGKILL
POLL = 0.2
PR_SET_PDEATHSIG = 1  # prctl(2)


def worker_count(workers: int) -> int:
    """Returns how many workers --workers asks for (0: one per core)."""
    return workers if workers > 0 else (os.cpu_count() or 1)


class _Worker:
    """One worker process slot: its process, when it started and its back-off."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.backoff = RESTART_MIN
        self.due = 0.0  # when a dead worker may start again


class Supervisor:
    """Runs and watches the workers; `run()` returns the exit status."""

    def __init__(self, argv: Sequence[str], count: int) -> None:
        self.argv = list(argv)  # the command line of a worker, without --worker
        self.workers = [_Worker(i + 1) for i in range(count)]
        self.stopping = False

    def command(self, index: int) -> list[str]:
        """Returns the command line of worker `index`."""
        return [*self.argv, f"--worker={index}"]

    def run(self) -> int:
        """Starts every worker and supervises until a signal stops them all."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        log.info("starting %d workers", len(self.workers))
        for worker in self.workers:
            self._start(worker)
        while not self.stopping:
            now = time.monotonic()
            for worker in self.workers:
                if worker.proc is not None and worker.proc.poll() is not None:
                    self._died(worker, now)
                if worker.proc is None and now >= worker.due:
                    self._start(worker)
            time.sleep(POLL)
        return self._drain()

    def _start(self, worker: _Worker) -> None:
        worker.proc = subprocess.Popen(self.command(worker.index), stdin=subprocess.DEVNULL,
                                       preexec_fn=_die_with_parent)
        worker.started = time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def _died(self, worker: _Worker, now: float) -> None:
        assert worker.proc is not None
        code = worker.proc.returncode
        if now - worker.started >= STABLE:
            worker.backoff = RESTART_MIN
        log.error("worker %d (pid %d) exited with status %s: starting it again in %.0f s",
                  worker.index, worker.proc.pid, code, worker.backoff)
        worker.proc, worker.due = None, now + worker.backoff
        worker.backoff = min(RESTART_MAX, worker.backoff * 2)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _drain(self) -> int:
        """Passes SIGTERM on to every worker and waits for them (SIGKILL after a while)."""
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        log.info("stopping %d workers", len(running))
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time: killing it", proc.pid)
                proc.kill()
                proc.wait()
        log.info("stopped")
        return 0


def _die_with_parent() -> None:
    """Asks Linux to send the worker SIGTERM if the parent dies (even by SIGKILL), so no
    worker outlives its supervisor; elsewhere it does nothing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def without_workers(args: Sequence[str]) -> list[str]:
    """Returns command-line arguments without any --workers/--worker option (and its value)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--workers", "--worker"):
            skip = True
        elif not arg.startswith(("--workers=", "--worker=")):
            out.append(arg)
    return out
