"""`make soak`: thousands of WebSocket connections held for minutes under every load at once,
checked for flat memory, descriptors and latency and for every delivery.

    python -m proof.soak                                 # 10 minutes, 10,000 connections
    python -m proof.soak --minutes 1 --connections 2000  # the short form CI runs (make soak)

The server runs on core 0 with its defaults (heartbeat, rate limits, metrics) but for the
per-IP connect rate; bench/loadgen's worker processes (proof/soakload.py) hold the clients on
core 1, bound to 127.0.0.2 and up. Load: a numbered broadcast every second, every room
publishing numbered messages, connects and disconnects, logins, slow consumers that stop
reading. One line per interval (a minute in runs of 3 minutes or more), then the verdict
(proof/soakreport.py); the results go to bench/results/ and the Soak section and plot of
docs/benchmarks.md. Exit status 1 when a criterion is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import math
import os
import shutil
import sys
import tempfile
from typing import Any

from bench.cli import machine_info, save_report
from bench.modes import ROOT, SECRET, SERVER_CORE, SOURCES, Clock
from bench.procs import Proc, prepare_process
from bench.server import seed
from localcluster.procs import free_port
from proof import soakplot, soakreport
from proof.soakplan import Plan
from proof.soakrun import SoakRun

__all__ = ["plan_from", "main"]

SETUP_SECONDS = 600.0  # seeding, connecting and the checks after the load, at most


def plan_from(args: argparse.Namespace) -> Plan:
    """Returns the run's sizes from the command line (the interval: a minute from 3 minutes
    on, else a sixth of the run); raises ValueError when they do not fit together."""
    interval = args.interval or (60.0 if args.minutes >= 3 else args.minutes * 10.0)
    workers = args.workers or max(2, math.ceil(args.connections / 3000))
    plan = Plan(minutes=args.minutes, connections=args.connections, interval=interval,
                rooms=args.rooms, room_interval=args.room_interval, churn_rate=args.churn,
                churn_lifetime=args.churn_lifetime, login_rate=args.logins, slow=args.slow,
                workers=workers, history_ttl=args.history_ttl)
    if not plan.history_ttl:  # the history is full within the first half of the warm-up
        plan = dataclasses.replace(plan, history_ttl=min(
            60.0, plan.warm_up * plan.interval / 2))
    if plan.feed < plan.workers:
        raise ValueError(f"{plan.connections} connections leave no feed clients beside "
                         f"{plan.rooms} rooms x {plan.members}, {plan.churn_pool} churning and "
                         f"{plan.slow} slow ones")
    if plan.connections > workers * 18000:
        raise ValueError("more connections than the workers' descriptors: raise --workers")
    return plan


def server_argv(port: int, data_dir: str, history_ttl: float) -> list[str]:
    """Returns the server's command line: its defaults but JSON logs, a connect rate per
    address the churn fits in (every client shares 8 source addresses), and a recovery history
    kept history_ttl seconds, so that it is full before memory is judged."""
    return [sys.executable, "main.py", "--address", "127.0.0.1", "--port", str(port),
            "--data-dir", data_dir, "--jwt-secret", SECRET, "--log-format", "json",
            "--ws-connect-rate", "1000000", "--history-ttl", f"{history_ttl:g}"]


async def measure(plan: Plan, tmp: str, clock: Clock) -> dict[str, Any]:
    """Seeds, starts the server and the workers, runs the soak; returns its results."""
    port, data_dir = free_port(), os.path.join(tmp, "data")
    names = [f"r{i}" for i in range(plan.rooms)]
    users = math.ceil(plan.connections / 10)
    ttl = int(plan.minutes * 60 + SETUP_SECONDS + 3600)  # no token expires during the run
    clock.say(f"seeding {users} users, an admin and {plan.rooms} rooms")
    seeded = await asyncio.to_thread(seed, data_dir, users, "", names, ttl)
    server = Proc("server", server_argv(port, data_dir, plan.history_ttl),
                  os.path.join(tmp, "server.log"), SERVER_CORE)
    await server.start()
    run = SoakRun(plan, tmp, clock, server, port, seeded, names)
    try:
        await server.wait_port(port)
        await run.start_pool(plan.minutes * 60 + SETUP_SECONDS + 60)
        return await run.run()
    except Exception as exc:  # noqa: BLE001 - reported as a missed criterion, with the rest
        why = f"{type(exc).__name__}: {exc}"
        clock.say(f"the run failed: {why}")
        run.result["error"] = why
        return run.result
    finally:
        await run.stop()
        await server.stop(grace=15.0)
        run.result["log"] = soakreport.scan_log(server.log_path)


def parser() -> argparse.ArgumentParser:
    """Returns the command line's parser."""
    p = argparse.ArgumentParser(description="Soak the server: connections held under load.")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load (10)")
    p.add_argument("--connections", type=int, default=10_000, help="sockets open (10000)")
    p.add_argument("--interval", type=float, default=0.0,
                   help="seconds per line (default: 60 from 3 minutes on, else a sixth)")
    p.add_argument("--rooms", type=int, default=200, help="rooms publishing (200)")
    p.add_argument("--room-interval", type=float, default=2.0,
                   help="seconds between two messages of one room (2)")
    p.add_argument("--churn", type=float, default=50.0,
                   help="connects, and disconnects, per second (50)")
    p.add_argument("--churn-lifetime", type=float, default=10.0,
                   help="seconds a churning client stays (10)")
    p.add_argument("--logins", type=float, default=1.0, help="logins per second (1)")
    p.add_argument("--slow", type=int, default=10,
                   help="slow consumers (stop reading) opened at the start and each minute (10)")
    p.add_argument("--history-ttl", type=float, default=0.0,
                   help="the server's --history-ttl (default: half the warm-up, at most 60)")
    p.add_argument("--workers", type=int, default=0, help="load-generator processes (auto)")
    p.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                   help="page whose Soak section to rewrite")
    p.add_argument("--no-docs", action="store_true", help="write only the JSON")
    p.add_argument("--img-dir", default=os.path.join(ROOT, "docs", "img"))
    p.add_argument("--note", default="", help="conditions of the run, shown on the page")
    p.add_argument("--render", metavar="JSON", help="only rewrite the section from a saved run")
    return p


def publish(report: dict[str, Any], args: argparse.Namespace, json_name: str) -> None:
    """Prints the section and writes it (and the plot) into the page unless --no-docs."""
    image = ""
    if not args.no_docs:
        path = os.path.join(args.img_dir, soakplot.PLOT)
        soakplot.draw(report, path)
        image = os.path.relpath(path, os.path.dirname(os.path.abspath(args.docs)))
    text = soakreport.section(report, json_name, image)
    print(f"\n{text}")
    if not args.no_docs:
        soakreport.write_section(args.docs, text)
        print(f"\nrewrote the Soak section of {args.docs}")


def main(argv: list[str] | None = None) -> int:
    """Runs the soak (or renders a saved one); returns 1 when a criterion is missed."""
    args = parser().parse_args(argv)
    if args.render:
        report = soakreport.load(args.render)
        report["note"] = args.note or report.get("note", "")
        publish(report, args, os.path.basename(args.render))
        return 0
    try:
        plan = plan_from(args)
    except ValueError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    clock, tmp = Clock(), tempfile.mkdtemp(prefix="soak-")
    prepare_process()
    report: dict[str, Any] = {
        "kind": "soak", "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loadavg_start": os.getloadavg(), "note": args.note, "machine": machine_info(),
        "plan": {**dataclasses.asdict(plan), "sources": len(SOURCES), "warm_up": plan.warm_up,
                 "window": plan.window, "members": plan.members, "churn_pool": plan.churn_pool}}
    clock.say(f"soak: {plan.describe()}; logs in {tmp}")
    try:
        report.update(asyncio.run(asyncio.wait_for(
            measure(plan, tmp, clock), plan.minutes * 60 + SETUP_SECONDS)))
    except TimeoutError:
        report["error"] = f"not done within {plan.minutes * 60 + SETUP_SECONDS:.0f} s"
    finally:
        report.update(loadavg_end=os.getloadavg(), duration_s=round(clock.elapsed(), 1))
    report["targets"] = soakreport.targets(report)
    path = save_report(report, args.results_dir)
    clock.say(f"wrote {path}")
    publish(report, args, os.path.basename(path))
    missed = [t["name"] for t in report["targets"] if t["met"] is False]
    if missed:
        print(f"soak: MISSED {', '.join(missed)}; the server's log is in {tmp}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    unjudged = [t["name"] for t in report["targets"] if t["met"] is None]
    print("soak: every criterion met" + (f"; not measured: {', '.join(unjudged)}"
                                         if unjudged else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
