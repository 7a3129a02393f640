"""Paired rounds: every server up at once, measured in turn, for CPU ratios noise cannot skew.

    python -m bench.workloads.paired [--quick] [--rounds 10] [--servers product,websockets,floor]
                                                                        (`make bench-paired`)

Each round measures every server once, in an order that rotates; a ratio is taken within a
round, then the median over the rounds, so both sides of it saw the same minute. H: server CPU
per handshake, `--handshakes` more connections a round, kept open as in W1. B: server CPU per
delivered message, W2's pattern, to `--connections` connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import time
from typing import Any

from bench import cli
from bench.modes import MODES, Clock, Mode
from bench.phases import Phases
from bench.stats import proc_runtime_seconds

__all__ = ["PairedRun", "run_paired", "summarize", "rotation", "main", "SERVERS", "SIZES"]

SERVERS = ("product", "websockets", "floor")
PEER = "websockets"  # the ratios' denominator
# (connections for B, handshakes per H round, broadcasts per B round, rounds) per mode.
SIZES = {"quick": (1000, 300, 4, 4), "full": (10_000, 800, 8, 12)}  # full: W2's 10k


class PairedRun(Phases):
    """One server of the paired run, with its load generators."""

    def cpu(self) -> float:
        """The server's on-CPU seconds, all threads, at nanosecond resolution."""
        return proc_runtime_seconds(self.server.pid)

    async def handshakes(self, count: int, offset: int = 0) -> dict[str, Any]:
        """Opens count more connections with the tokens from offset on (users the server has
        not seen, three tabs each, as in W1), measuring the server's CPU; they stay open."""
        cpu0 = self.cpu()
        c = await self.pool.connect(self.port, self.tokens(), count, offset=offset,
                                    small_every=0)
        ok = c["ok"]
        return {"cpu_us": 1e6 * (self.cpu() - cpu0) / ok if ok else None, "ok": ok,
                "failed": c["failed"], "per_s": ok / c["wall_s"] if c["wall_s"] > 0 else None}

    async def broadcasts(self, tag: str, count: int) -> dict[str, Any]:
        """Runs count broadcasts, one in flight; returns the CPU per delivered message."""
        run = await self.broadcast_phase(tag, count, 60.0)
        return {"cpu_us": run["cpu_us_per_msg"], "delivered": run["delivered"],
                "expected": run["expected"]}


def rotation(items: list[Any], index: int) -> list[Any]:
    """Returns items rotated by index: round i starts with a different server each time."""
    k = index % len(items) if items else 0
    return items[k:] + items[:k]


def summarize(rounds: list[dict[str, dict[str, Any]]], peer: str = PEER) -> dict[str, Any]:
    """Medians per server and, per server, the median of its per-round ratio to the peer."""
    names = list(rounds[0]) if rounds else []
    out: dict[str, Any] = {"median_cpu_us": {}, "ratio_to_peer": {}}
    for name in names:
        values = [r[name]["cpu_us"] for r in rounds if r[name].get("cpu_us") is not None]
        out["median_cpu_us"][name] = statistics.median(values) if values else None
        if name == peer or peer not in names:
            continue
        ratios = [r[name]["cpu_us"] / r[peer]["cpu_us"] for r in rounds
                  if r[name].get("cpu_us") and r[peer].get("cpu_us")]
        out["ratio_to_peer"][name] = statistics.median(ratios) if ratios else None
    return out


async def _rounds(runs: list[PairedRun], rounds: int, clock: Clock, label: str, measure: Any,
                  digits: int) -> dict[str, Any]:
    """Runs measure(run, i) for every server in each round, in rotating order; returns the
    rounds and their summary."""
    out = []
    for i in range(rounds):
        row = {run.name: await measure(run, i) for run in rotation(runs, i)}
        out.append({run.name: row[run.name] for run in runs})
        clock.say(f"{label} round {i + 1}/{rounds}: " + ", ".join(
            f"{n} {'-' if v['cpu_us'] is None else round(v['cpu_us'], digits)} us"
            for n, v in out[-1].items()))
    return {"rounds": out, **summarize(out)}


async def run_paired(mode: Mode, tmp: str, clock: Clock, servers: tuple[str, ...],
                     rounds: int, connections: int, handshakes: int,
                     broadcasts: int) -> dict[str, Any]:
    """Starts every server, runs the H then the B rounds, stops them; returns the report."""
    deadline = time.monotonic() + 3600
    runs = [PairedRun(name, mode, tmp, clock, deadline) for name in servers]
    report: dict[str, Any] = {"rounds": rounds, "connections": connections,
                              "handshakes": handshakes, "broadcasts": broadcasts,
                              "servers": list(servers), "peer": PEER}
    try:
        for run in runs:
            await run.start()
        for run in runs:  # warm-up: allocator, imports, the first connections' costs
            await run.handshakes(min(200, handshakes))
        report["handshake"] = await _rounds(  # users not seen before, as in W1
            runs, rounds, clock, "H", lambda run, i: run.handshakes(handshakes,
                                                                   (i + 1) * handshakes), 0)
        for run in runs:  # closed between the phases, not between rounds (no churn in W1)
            await run.pool.all({"cmd": "close_all"})
        await asyncio.sleep(3.0)
        report["opened"] = {run.name: (await run.pool.connect(run.port, run.tokens(),
                                                              connections))["ok"]
                            for run in runs}
        await asyncio.sleep(2.0)
        for run in runs:
            await run.broadcasts("warm", 4)
        report["broadcast"] = await _rounds(
            runs, rounds, clock, "B", lambda run, i: run.broadcasts(f"b{i}", broadcasts), 2)
    finally:
        for run in runs:
            with contextlib.suppress(Exception):
                await run.stop()
    return report


async def run(args: argparse.Namespace, mode: Mode, clock: Clock, tmp: str) -> dict[str, Any]:
    """Sizes the run from the mode and the options, then runs the paired rounds."""
    connections, handshakes, broadcasts, rounds = SIZES[mode.name]
    connections, handshakes = args.connections or connections, args.handshakes or handshakes
    rounds = args.rounds or rounds
    users = max(connections, handshakes * (rounds + 1)) // mode.tabs + 1
    mode = dataclasses.replace(MODES[mode.name], users=users, workers=2)
    servers = tuple(s for s in args.servers.split(",") if s) or SERVERS
    if PEER not in servers:
        raise SystemExit(f"--servers must include {PEER}, the ratios' denominator")
    return await run_paired(mode, tmp, clock, servers, rounds, connections, handshakes,
                            broadcasts)


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the paired rounds."""
    p = cli.parser("CPU per handshake and per delivery, every server up at once.")
    p.add_argument("--servers", default=",".join(SERVERS),
                   help=f"comma-separated, {PEER} included (default {','.join(SERVERS)})")
    p.add_argument("--rounds", type=int, default=0, help="rounds (default 12; quick 4)")
    p.add_argument("--connections", type=int, default=0,
                   help="connections the broadcasts go to (default 10000; quick 1000)")
    p.add_argument("--handshakes", type=int, default=0,
                   help="handshakes per round (default 800; quick 300)")
    return cli.main("paired", p, run, argv)


if __name__ == "__main__":
    sys.exit(main())
