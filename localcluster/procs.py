"""Child processes of a local cluster: started in their own session, stopped by their id."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable

__all__ = ["Child", "free_port", "wait_until", "port_open"]

NOFILE = 20000


def _child_setup() -> None:
    """Runs in each child before exec: a high descriptor limit, SIGTERM when the parent dies."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port on host that is free right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tells whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Polls condition until it holds or timeout passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Child:
    """One child process with its output in a log file.

    It runs in a session of its own, so a Ctrl-C in the terminal reaches only the cluster
    script, which then stops its children in order (proxy first, then nodes, then services).
    """

    def __init__(self, name: str, argv: list[str], log_path: str, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.log_path, self.cwd = name, argv, log_path, cwd
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Starts the process with stdout and stderr appended to its log file."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=_child_setup, start_new_session=True)

    @property
    def pid(self) -> int:
        """Returns the process id."""
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        """Tells whether the process has been started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def send(self, signum: int) -> None:
        """Sends signum to this process (and only to it)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    def stop(self, signum: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Sends signum, waits up to grace seconds, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send(signum)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def output(self) -> str:
        """Returns what the process has written to its log so far."""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
