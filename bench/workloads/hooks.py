"""The publish hook's cost (`make bench-hooks`: `bench.run --hooks-only`; a part of `make
bench`): the rooms workload with `--hooks=publish` answered by an application in this process,
and without, in alternating rounds; R1's server CPU per publish and delivery p99."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Any

import tornado.web

from bench.modes import Clock, Mode
from bench.server import run_guarded
from bench.workloads.rooms import RoomsBench
from localcluster.procs import free_port

__all__ = ["run_hooks"]


class _Allow(tornado.web.RequestHandler):
    """The application: allows every publish, and counts the calls."""
    def post(self) -> None:
        self.application.settings["calls"][0] += 1
        self.write(b'{"result": "allow"}')


def _r1(result: dict[str, Any]) -> dict[str, Any]:
    """Returns R1's CPU per publish, p99 and counts of a rooms run (or why it failed)."""
    r1 = result.get("workloads", {}).get("R1")
    if not r1:
        return {"error": result.get("error", "no R1 result")}
    return {"p99_ms": r1["latency"]["p99_ms"],
            **{k: r1[k] for k in ("published", "delivered", "expected", "cpu_us_per_publish")}}


async def run_hooks(mode: Mode, tmp: str, clock: Clock, rounds: int) -> dict[str, Any]:
    """Runs the rooms workload with the publish hook off and on, swapping the order each round."""
    calls, port = [0], free_port()
    server = tornado.web.Application([(r"/hook", _Allow)], calls=calls).listen(port, "127.0.0.1")
    on = ("--hook-url", f"http://127.0.0.1:{port}/hook", "--hooks", "publish")
    sizes = dataclasses.replace(mode, rooms=min(mode.rooms, 40), members=min(mode.members, 25))
    out: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            row: dict[str, Any] = {"order": ["off", "on"][::1 if r % 2 == 0 else -1]}
            for setting in row["order"]:
                os.makedirs(path := os.path.join(tmp, f"hooks-{setting}-{r}"))
                row[setting] = _r1(await run_guarded(RoomsBench(
                    "product", sizes, path, clock, time.monotonic() + 300,
                    extra_args=on if setting == "on" else ()), f"hooks {setting}"))
            if "error" not in row["on"] and "error" not in row["off"]:
                row["ratio"] = row["on"]["cpu_us_per_publish"] / row["off"]["cpu_us_per_publish"]
            out.append(row)
    finally:
        server.stop()
    done = [row for row in out if "ratio" in row]
    med = {f"{k}_{s}": statistics.median(row[s][k] for row in done) if done else None
           for k in ("cpu_us_per_publish", "p99_ms") for s in ("on", "off")}
    return {"rooms": sizes.rooms, "members": sizes.members, "rounds": out, "hook_calls": calls[0],
            **med, "ratio": statistics.median(r["ratio"] for r in done) if done else None}

