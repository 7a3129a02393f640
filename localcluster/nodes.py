"""Server nodes of a local cluster: main.py processes sharing a database and a JWT secret."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request

from localcluster.procs import Child, wait_until

__all__ = ["NodeError", "Node", "ROOT"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NodeError(RuntimeError):
    """Raised when a node does not come up."""


class Node:
    """One main.py process on a loopback port with its own data dir."""

    def __init__(self, index: int, port: int, workdir: str, options: list[str],
                 env: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.index, self.port, self.host = index, port, host
        self.data_dir = os.path.join(workdir, f"node{index}")
        os.makedirs(self.data_dir, exist_ok=True)
        argv = [sys.executable, os.path.join(ROOT, "main.py"), "--address", host,
                "--port", str(port), "--data-dir", self.data_dir, *options]
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.child = Child(f"node{index}", argv, os.path.join(workdir, f"node{index}.log"),
                           cwd=ROOT, env=environ)

    @property
    def address(self) -> str:
        """Returns host:port."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Returns the node's own http:// URL (bypassing the proxy)."""
        return f"http://{self.address}"

    def healthy(self) -> bool:
        """Tells whether GET /health answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def start(self) -> None:
        """Starts the process (does not wait; see wait_ready)."""
        self.child.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Waits until /health answers 200; raises with the node's log if it exits first."""
        if not wait_until(lambda: self.healthy() or not self.child.running(), timeout, 0.1) \
                or not self.child.running():
            raise NodeError(f"node {self.index} did not start on {self.port}:\n"
                            f"{self.child.output()[-2000:]}")

    def kill(self) -> None:
        """SIGKILLs the node: no drain, no goodbye, as when a machine dies."""
        self.child.send(signal.SIGKILL)
        if self.child.proc is not None:
            self.child.proc.wait(10)

    def stop(self) -> int | None:
        """Stops the node with SIGTERM (it closes its sockets with 1001 and exits)."""
        return self.child.stop(signal.SIGTERM, grace=15.0)

    def output(self) -> str:
        """Returns the node's log so far."""
        return self.child.output()
