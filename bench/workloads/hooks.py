"""The publish hook's cost, `python -m bench.workloads.hooks` (`make bench-hooks`, and part of
`make bench`): R1's room publishes with `--hooks=publish` answered by an application in this
process, and without hooks, in alternating rounds; server CPU per publish and delivery p99."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from typing import Any

import tornado.web

from bench import cli
from bench.modes import Clock, Mode
from bench.server import run_guarded
from bench.workloads.rooms import RoomsBench
from localcluster.procs import free_port

__all__ = ["HookedRooms", "run_hooks", "main"]


class _Allow(tornado.web.RequestHandler):
    """The application: allows every publish, and counts the calls."""

    def post(self) -> None:
        self.application.settings["calls"][0] += 1
        self.write(b'{"result": "allow"}')


class HookedRooms(RoomsBench):
    """R1 alone: members publishing into their rooms, on a server started with extra_args."""

    async def run(self) -> dict[str, Any]:
        """Starts the server, joins every member to its room and runs one publish phase."""
        m = self.mode
        self.extra_args = ("--inbound-rate", "1000", "--inbound-burst", "1000", *self.extra_args)
        names = [f"r{i}" for i in range(m.rooms)]
        await self.start(trigger=False, rooms=tuple(names))
        joined = await self.join([n for n in names for _ in range(m.members)],
                                 m.rooms * m.members, 0)
        await asyncio.sleep(2.0)
        r1 = await self.publish_phase()
        self.say(f"{r1['published']} publishes, {r1['cpu_us_per_publish']:.0f} us CPU each, "
                 f"p99 {r1['latency']['p99_ms']:.1f} ms")
        return {"connections": joined["ok"], "p50_ms": r1["latency"]["p50_ms"],
                "p99_ms": r1["latency"]["p99_ms"],
                **{k: r1[k] for k in ("published", "delivered", "expected",
                                      "cpu_us_per_publish", "cpu_us_per_msg", "msgs_per_s")}}


async def run_hooks(mode: Mode, tmp: str, clock: Clock, rounds: int) -> dict[str, Any]:
    """Runs R1 with the publish hook off and on, the order swapped every other round."""
    calls = [0]
    port = free_port()
    server = tornado.web.Application([(r"/hook", _Allow)], calls=calls).listen(port, "127.0.0.1")
    on = ("--hook-url", f"http://127.0.0.1:{port}/hook", "--hooks", "publish")
    sizes = dataclasses.replace(mode, rooms=min(mode.rooms, 40), members=min(mode.members, 25))
    out: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            row: dict[str, Any] = {"order": ["off", "on"] if r % 2 == 0 else ["on", "off"]}
            for setting in row["order"]:
                os.makedirs(path := os.path.join(tmp, f"hooks-{setting}-{r}"))
                row[setting] = await run_guarded(HookedRooms(
                    "product", sizes, path, clock, time.monotonic() + 300,
                    extra_args=on if setting == "on" else ()), f"hooks {setting}")
            if all("cpu_us_per_publish" in row[s] for s in ("on", "off")):
                row["ratio"] = row["on"]["cpu_us_per_publish"] / row["off"]["cpu_us_per_publish"]
            out.append(row)
    finally:
        server.stop()
    done = [row for row in out if "ratio" in row]
    med = {f"{k}_{s}": statistics.median(row[s][k] for row in done) if done else None
           for k in ("cpu_us_per_publish", "p99_ms") for s in ("on", "off")}
    return {"rooms": sizes.rooms, "members": sizes.members, "rounds": out, "hook_calls": calls[0],
            **med, "ratio": statistics.median(r["ratio"] for r in done) if done else None}


async def run(args: argparse.Namespace, mode: Mode, clock: Clock, tmp: str) -> dict[str, Any]:
    """The report's body: the rounds and their medians."""
    return await run_hooks(mode, tmp, clock, args.rounds)


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the comparison."""
    p = cli.parser("R1 room publishes with the publish hook on vs off.")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    return cli.main("hooks", p, run, argv)


if __name__ == "__main__":
    sys.exit(main())
