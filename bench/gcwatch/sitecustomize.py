"""Counts a benchmarked server's full garbage collections and the CPU they take.

The benchmark starts every Python server (this one and the peers alike) with this directory
first on PYTHONPATH and BENCH_GC_LOG set to a path prefix; Python imports this module at
start-up, before the server's own code. Each full (generation 2) collection then appends one
line to `<prefix>.<pid>`: the process's full collections so far and their CPU seconds so far
(the collecting thread's CPU time, which is where a collection runs). A full collection walks
every tracked object, so its cost grows with the connections a server holds, and a handshake
round it falls in pays for all of them: the paired rounds report it beside the CPU.

Without BENCH_GC_LOG nothing is installed. The virtualenv's Python has no sitecustomize of its
own for this one to hide.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any


def _install(prefix: str) -> None:
    state = {"pid": 0, "count": 0, "seconds": 0.0, "began": 0.0}

    def watch(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            state["began"] = time.thread_time()
            return
        pid = os.getpid()
        if pid != state["pid"]:  # a forked worker counts its own from zero
            state.update(pid=pid, count=0, seconds=0.0)
        state["count"] += 1
        state["seconds"] += time.thread_time() - state["began"]
        with open(f"{prefix}.{pid}", "a", encoding="ascii") as out:
            out.write(f"{state['count']} {state['seconds']:.6f}\n")

    gc.callbacks.append(watch)


if os.environ.get("BENCH_GC_LOG"):
    _install(os.environ["BENCH_GC_LOG"])
