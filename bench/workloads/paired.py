"""Paired rounds, `python -m bench.workloads.paired` (`make bench-paired`): every server up at
once, measured in turn in rotating order, for CPU ratios taken within a round (H: per
handshake of a user not seen before, R: per reconnect of a session seen seconds before, B: per
delivery) that a noisy machine cannot skew."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench import cli
from bench.modes import MODES, NOFILE, PAIRED_TABS, ROOT, Clock, Mode
from bench.phases import Phases
from bench.report.format import fmt
from bench.stats import proc_runtime_seconds

__all__ = ["PairedRun", "run", "summarize", "rotation", "main", "SERVERS", "SIZES"]

SERVERS = ("product", "websockets", "tornado", "floor")  # tornado: Tornado's own handshake
PEER = "websockets"  # the ratios' denominator
# (connections for B, handshakes per H round, broadcasts per B round, rounds) per mode.
SIZES = {"quick": (1000, 300, 4, 4), "full": (10_000, 800, 8, 12)}  # full: W2's 10k


class PairedRun(Phases):
    """One server of the paired run, with its load generators."""

    def cpu(self) -> float:
        """The server's on-CPU seconds, all threads, at nanosecond resolution."""
        return proc_runtime_seconds(self.server.pid)

    async def broadcasts(self, tag: str, count: int) -> dict[str, Any]:
        """Runs count broadcasts, one in flight; returns the CPU per delivered message and the
        part of it full garbage collections took."""
        gc0 = self.full_gcs()
        run = await self.broadcast_phase(tag, count, 60.0)
        return {"cpu_us": run["cpu_us_per_msg"], "delivered": run["delivered"],
                "expected": run["expected"], **self.gc_since(gc0, run["delivered"])}


def checkout(rev: str, path: str) -> str:
    """Writes the tree of git revision rev to path (git archive); returns its commit."""
    commit, tree = (subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True) for cmd in (
        ["rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}"],
        ["archive", "--format=tar", rev]))
    for done in (commit, tree):
        if done.returncode:
            raise SystemExit(f"--base {rev}: {done.stderr.decode(errors='replace').strip()}")
    os.makedirs(path)
    subprocess.run(["tar", "-x", "-C", path], input=tree.stdout, check=True)
    return commit.stdout.decode().strip()


def rotation(items: list[Any], index: int) -> list[Any]:
    """Returns items rotated by index: round i starts with a different server each time."""
    k = index % len(items) if items else 0
    return items[k:] + items[:k]


def _cpu(row: dict[str, Any], gc: bool) -> float | None:
    """A round's CPU per unit for one server; gc=False: less its full collections' share
    (None where the round did not count them)."""
    cpu = row.get("cpu_us")
    if gc or cpu is None:
        return cpu
    collected = row.get("gc_us")
    return None if collected is None else cpu - collected


def summarize(rounds: list[dict[str, dict[str, Any]]], peer: str = PEER) -> dict[str, Any]:
    """Medians per server and, per server, the median of its per-round ratio to the peer; the
    same again without the CPU of full garbage collections (`_no_gc`), where rounds count it."""
    names = list(rounds[0]) if rounds else []
    out: dict[str, Any] = {}
    for gc, suffix in ((True, ""), (False, "_no_gc")):
        medians: dict[str, float | None] = {}
        ratios_to_peer: dict[str, float | None] = {}
        for name in names:
            values = [v for r in rounds if (v := _cpu(r[name], gc)) is not None]
            medians[name] = statistics.median(values) if values else None
            if name == peer or peer not in names:
                continue
            ratios = [mine / theirs for r in rounds
                      if (mine := _cpu(r[name], gc)) and (theirs := _cpu(r[peer], gc))]
            ratios_to_peer[name] = statistics.median(ratios) if ratios else None
        if gc or any(v is not None for v in medians.values()):
            out[f"median_cpu_us{suffix}"], out[f"ratio_to_peer{suffix}"] = medians, ratios_to_peer
    return out


async def _rounds(runs: list[PairedRun], rounds: int, clock: Clock, label: str,
                  measure: Any, between: Any = None) -> dict[str, Any]:
    """Runs measure(run, i) on every server per round, in rotating order, then between()."""
    out = []
    for i in range(rounds):
        row = {run.name: await measure(run, i) for run in rotation(runs, i)}
        out.append({run.name: row[run.name] for run in runs})
        clock.say(f"{label} round {i + 1}/{rounds}: " + ", ".join(
            f"{n} {fmt(v['cpu_us'], 2)} us" for n, v in out[-1].items()))
        if between is not None:
            await between()
    return {"rounds": out, **summarize(out)}


async def reconnect(run: PairedRun, count: int, offset: int) -> dict[str, Any]:
    """Connects count new sessions, then the same again (a network blip's reconnects); returns
    the second wave's CPU per handshake, the first's (`new_cpu_us`) and their ratio."""
    new = await run.connect(count, offset)
    if new["ok"] < count:  # the first wave short: the second would not be all known sessions
        return {**new, "cpu_us": None, "new_cpu_us": new["cpu_us"], "known_vs_new": None}
    known = await run.connect(count, offset)
    ratio = known["cpu_us"] / new["cpu_us"] if known["cpu_us"] and new["cpu_us"] else None
    return {**known, "new_cpu_us": new["cpu_us"], "known_vs_new": ratio}


async def close_all(runs: list[PairedRun], settle: float) -> None:
    """Closes every server's clients and lets the servers finish their closes."""
    for server in runs:
        await server.pool.all({"cmd": "close_all"})
    await asyncio.sleep(settle)


async def run(args: argparse.Namespace, mode: Mode, clock: Clock, tmp: str) -> dict[str, Any]:
    """Starts every server, runs the H, R and B rounds, stops them; returns the report."""
    connections, handshakes, broadcasts, rounds = SIZES[mode.name]
    connections, handshakes = args.connections or connections, args.handshakes or handshakes
    rounds = args.rounds or rounds
    if (held := handshakes * (rounds + 1)) > NOFILE - 1000:  # rounds keep their connections
        raise SystemExit(f"{rounds} rounds of {handshakes} handshakes hold {held:,} sockets in "
                         f"a server, over the {NOFILE:,} descriptors a process may have")
    # Users for the warm-up, the H rounds and the R rounds' first waves, none seen twice.
    users = max(connections, handshakes * (2 * rounds + 1)) // PAIRED_TABS + 1
    mode = dataclasses.replace(MODES[mode.name], users=users, tabs=PAIRED_TABS, workers=2)
    servers = tuple(s for s in args.servers.split(",") if s) or SERVERS
    if PEER not in servers:
        raise SystemExit(f"--servers must include {PEER}, the ratios' denominator")
    base = f"product@{args.base}" if args.base else ""
    args.no_docs = args.no_docs or bool(base)  # a before/after is not the page's run
    servers += (base,) if base else ()
    runs = [PairedRun(name, mode, tmp, clock, time.monotonic() + 3600) for name in servers]
    report: dict[str, Any] = {"rounds": rounds, "connections": connections,
                              "handshakes": handshakes, "tabs": PAIRED_TABS,
                              "broadcasts": broadcasts, "servers": list(servers), "peer": PEER}
    if base:  # the revision's own tree; the load generators and the seeding stay this tree's
        runs[-1].root = os.path.join(tmp, "base")
        report["base"] = {"rev": args.base, "commit": checkout(args.base, runs[-1].root)}
    try:
        for server in runs:
            await server.start()
        for server in runs:  # warm-up: allocator, imports, the first connections' costs
            await server.connect(min(200, handshakes))
        report["handshake"] = await _rounds(  # users not seen before, as in W1
            runs, rounds, clock, "H", lambda s, i: s.connect(handshakes, (i + 1) * handshakes))
        await close_all(runs, 3.0)  # between the phases, not between H rounds (no churn in W1)
        report["reconnect"] = await _rounds(  # new users, then the same sessions again
            runs, rounds, clock, "R",
            lambda s, i: reconnect(s, handshakes, (rounds + 1 + i) * handshakes),
            lambda: close_all(runs, 2.0))
        report["reconnect"]["known_vs_new"] = {
            run.name: statistics.median(ratios) if (ratios := [
                r[run.name]["known_vs_new"] for r in report["reconnect"]["rounds"]
                if r[run.name].get("known_vs_new")]) else None for run in runs}
        report["opened"] = {s.name: (await s.connect(connections))["ok"] for s in runs}
        await asyncio.sleep(2.0)
        for server in runs:
            await server.broadcasts("warm", 4)
        report["broadcast"] = await _rounds(
            runs, rounds, clock, "B", lambda s, i: s.broadcasts(f"b{i}", broadcasts))
        for part in ("handshake", "reconnect", "broadcast") if base else ():  # over the base
            report[part]["ratio_to_base"] = summarize(
                report[part]["rounds"], base)["ratio_to_peer"].get("product")
    finally:
        for server in runs:
            with contextlib.suppress(Exception):
                await server.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the paired rounds."""
    p = cli.parser("CPU per handshake and per delivery, every server up at once.")
    p.add_argument("--servers", default=",".join(SERVERS),
                   help=f"comma-separated, {PEER} included (default {','.join(SERVERS)}; "
                   "product-asyncio: this server on the stock loop, beside product on uvloop)")
    p.add_argument("--base", metavar="REV", default="",
                   help="also run this server as built at git revision REV, for a paired "
                   "before/after (product@REV; the docs are left alone)")
    p.add_argument("--rounds", type=int, default=0, help="rounds (default 12; quick 4)")
    p.add_argument("--connections", type=int, default=0,
                   help="connections the broadcasts go to (default 10000; quick 1000)")
    p.add_argument("--handshakes", type=int, default=0,
                   help="handshakes per round (default 800; quick 300)")
    return cli.main("paired", p, run, argv)


if __name__ == "__main__":
    sys.exit(main())
