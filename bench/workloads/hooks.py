"""The publish hook's cost (`make bench-hooks`; a part of `make bench`): the rooms workload with
`--hooks=publish` answered by an application in this process, and without, in turns."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import tornado.web

from bench.modes import Clock, Mode
from bench.phases import alternate
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

    async def one(setting: str, _: int, path: str) -> dict[str, Any]:
        """Returns R1's figures with the hook off or on, or why there are none."""
        run = await run_guarded(RoomsBench("product", sizes, path, clock, time.monotonic() + 300,
                                           extra_args=on * (setting == "on")), setting)
        r1 = run.get("workloads", {}).get("R1")
        return r1 or {"error": run.get("error", "no R1 result")}

    try:
        out = await alternate(os.path.join(tmp, "hooks"), ("off", "on"), "on",
                              1 if mode.name == "quick" else 2, "cpu_us_per_publish", one)
    finally:
        server.stop()
    return {"rooms": sizes.rooms, "members": sizes.members, "hook_calls": calls[0], **out}
