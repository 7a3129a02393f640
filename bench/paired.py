"""Paired rounds: every server up at once, measured in turn, for CPU ratios noise cannot skew.

    python -m bench.paired [--quick] [--rounds 10] [--servers product,websockets,floor]
                                                                    (`make bench-paired`)

`make bench` measures one server after another, minutes apart. On a shared machine the load
beside the server's core swings by a third from one minute to the next, which moves such a
ratio more than most changes do. Here every server runs at the same time (each pinned to the
server core, its load generators to the client core), each round measures every server once,
in an order that rotates from round to round, and each ratio is taken within a round and then
the median over the rounds: both sides of a ratio saw the same minute. Two measurements:

- H (W1's handshake): the server's CPU per authenticated upgrade. Each round opens
  `--handshakes` more connections, which stay open as in W1 (the servers grow together,
  round by round): this server's with the tokens of users it has not seen before, three
  tabs each, as in W1 (so one session check in three goes to the database, the others find
  it checked); the peers accept any token. They are closed before the B rounds.
- B (W2's broadcast): the server's CPU per delivered message, one alert in flight, to
  `--connections` open connections (`--broadcasts` alerts a round).

Server CPU is the on-CPU time of all the server's threads (/proc schedstat, nanoseconds).
Writes bench/results/paired-<stamp>.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.clock import Clock  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.modes import MODES, Mode  # noqa: E402
from bench.paired_report import render_block, text_table, write_block  # noqa: E402
from bench.phases import Phases  # noqa: E402
from bench.sections import prepare_process, render_saved, save_report, update_docs  # noqa: E402
from bench.stats import proc_runtime_seconds  # noqa: E402

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

    def tokens(self) -> list[str]:
        """The tokens to connect with: each seeded user's three tabs, or any for a peer."""
        if self.seeded is None:
            return [""]
        return [t for t in self.seeded.user_tokens for _ in range(self.mode.tabs)]

    async def handshakes(self, count: int, offset: int = 0) -> dict[str, Any]:
        """Opens count more connections with the tokens from offset on, measuring the
        server's CPU meanwhile; they stay open, as W1's do."""
        cpu0 = self.cpu()
        c = await self.pool.connect("127.0.0.1", self.port, self.tokens(), count, self.sources,
                                    offset=offset, small_every=0)
        cpu = self.cpu() - cpu0
        ok = c["ok"]
        return {"cpu_us": 1e6 * cpu / ok if ok else None, "ok": ok, "failed": c["failed"],
                "per_s": ok / c["wall_s"] if c["wall_s"] > 0 else None}

    async def open_connections(self, count: int) -> int:
        """Opens the connections the broadcast rounds go to; returns how many opened."""
        c = await self.pool.connect("127.0.0.1", self.port, self.tokens(), count, self.sources)
        return c["ok"]

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


async def run_paired(mode: Mode, tmp: str, clock: Clock, servers: tuple[str, ...],
                     rounds: int, connections: int, handshakes: int,
                     broadcasts: int) -> dict[str, Any]:
    """Starts every server, runs the H then the B rounds, stops them; returns the report."""
    started = dt.datetime.now(dt.UTC)
    deadline = time.monotonic() + 3600
    runs = [PairedRun(name, mode, tmp, clock, deadline, False) for name in servers]
    report: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "mode": mode.name, "rounds": rounds,
        "connections": connections, "handshakes": handshakes, "broadcasts": broadcasts,
        "servers": list(servers), "peer": PEER, "loadavg_start": os.getloadavg()}
    try:
        for run in runs:
            await run.start()
        h_rounds: list[dict[str, dict[str, Any]]] = []
        for run in runs:  # warm-up: allocator, imports, the first connections' costs
            await run.handshakes(min(200, handshakes))
        for i in range(rounds):
            row = {}
            for run in rotation(runs, i):  # users not seen before, as in W1
                row[run.name] = await run.handshakes(handshakes, (i + 1) * handshakes)
            h_rounds.append({name: row[name] for name in servers})
            clock.say(f"H round {i + 1}/{rounds}: " + ", ".join(
                f"{n} {_us(row[n]['cpu_us'])}" for n in servers))
        for run in runs:  # closed between the phases, not between rounds (no churn in W1)
            await run.pool.all({"cmd": "close_all"})
        await asyncio.sleep(3.0)
        opened = {}
        for run in runs:
            opened[run.name] = await run.open_connections(connections)
        await asyncio.sleep(2.0)
        for run in runs:
            await run.broadcasts("warm", 4)
        b_rounds: list[dict[str, dict[str, Any]]] = []
        for i in range(rounds):
            row = {}
            for run in rotation(runs, i):
                row[run.name] = await run.broadcasts(f"b{i}", broadcasts)
            b_rounds.append({name: row[name] for name in servers})
            clock.say(f"B round {i + 1}/{rounds}: " + ", ".join(
                f"{n} {_us(row[n]['cpu_us'], 2)}" for n in servers))
    finally:
        for run in runs:
            with contextlib.suppress(Exception):
                await run.stop()
    report.update(opened=opened, loadavg_end=os.getloadavg(),
                  handshake={"rounds": h_rounds, **summarize(h_rounds)},
                  broadcast={"rounds": b_rounds, **summarize(b_rounds)})
    return report


def _us(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f} us"


async def main_async(args: argparse.Namespace) -> int:
    """Runs the paired rounds, prints them and updates the docs section."""
    name = "quick" if args.quick else "full"
    connections, handshakes, broadcasts, rounds = SIZES[name]
    connections = args.connections or connections
    handshakes = args.handshakes or handshakes
    rounds = args.rounds or rounds
    base = MODES[name]
    users = max(connections, handshakes * (rounds + 1)) // base.tabs + 1
    mode = dataclasses.replace(base, users=users, workers=2)
    clock = Clock()
    prepare_process()
    tmp = tempfile.mkdtemp(prefix="bench-paired-")
    servers = tuple(s for s in args.servers.split(",") if s) or SERVERS
    if PEER not in servers:
        raise SystemExit(f"--servers must include {PEER}, the ratios' denominator")
    report = await run_paired(mode, tmp, clock, servers, rounds, connections, handshakes,
                              broadcasts)
    report["machine"] = machine_info()
    path = save_report(report, args.results_dir, "paired")
    print(text_table(report))
    update_docs(report, path, args.docs, render_block, write_block, clock)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the paired rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, {PEER} included (default {','.join(SERVERS)})")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 12; quick 4)")
    parser.add_argument("--connections", type=int, default=0,
                        help="connections the broadcasts go to (default 10000; quick 1000)")
    parser.add_argument("--handshakes", type=int, default=0,
                        help="handshakes per round (default 800; quick 300)")
    parser.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                        help="page whose paired section to update ('' for none)")
    parser.add_argument("--render", metavar="JSON",
                        help="only rewrite the docs section from a saved paired-*.json")
    args = parser.parse_args(argv)
    if args.render:
        return render_saved(args.render, args.docs, render_block, write_block)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
