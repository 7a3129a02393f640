"""The publish hook's cost (`make bench-hooks`; a part of `make bench`): the rooms workload with
`--hooks=publish` answered by an application in this process, and without, in turns."""

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


async def run_hooks(mode: Mode, tmp: str, clock: Clock) -> dict[str, Any]:
    """Runs the rooms workload with the hook off and on, in two rounds (one in quick mode)."""
    calls, port = [0], free_port()
    server = tornado.web.Application([(r"/hook", _Allow)], calls=calls).listen(port, "127.0.0.1")
    on = ("--hook-url", f"http://127.0.0.1:{port}/hook", "--hooks", "publish")
    sizes = dataclasses.replace(mode, rooms=min(mode.rooms, 40), members=min(mode.members, 25))
    out: list[dict[str, Any]] = []
    for r in range(1 if mode.name == "quick" else 2):
        row: dict[str, Any] = {"order": ["off", "on"][::1 if r % 2 == 0 else -1]}
        for setting in row["order"]:
            os.makedirs(path := os.path.join(tmp, f"hooks-{setting}-{r}"))
            run = await run_guarded(RoomsBench("product", sizes, path, clock, time.monotonic()
                                               + 300, extra_args=on * (setting == "on")), setting)
            r1 = run.get("workloads", {}).get("R1")  # R1's figures, or why there are none
            row[setting] = ({**r1, "p99_ms": r1["latency"]["p99_ms"]} if r1
                            else {"error": run.get("error", "no R1 result")})
        if "error" not in row["on"] and "error" not in row["off"]:
            row["ratio"] = row["on"]["cpu_us_per_publish"] / row["off"]["cpu_us_per_publish"]
        out.append(row)
    server.stop()  # run_guarded reports a failed run instead of raising
    done = [row for row in out if "ratio" in row]
    med = {f"{k}_{s}": statistics.median(row[s][k] for row in done) if done else None
           for k in ("cpu_us_per_publish", "p99_ms") for s in ("on", "off")}
    return {"rooms": sizes.rooms, "members": sizes.members, "rounds": out, "hook_calls": calls[0],
            **med, "ratio": statistics.median(r["ratio"] for r in done) if done else None}

