"""The benchmark orchestrator: `python -m bench.run [--quick]` (`make bench`, `make bench-quick`).

For each server (this product, then the peers) it starts the server pinned to core 0, starts
load-generator processes pinned to core 1, runs the workloads, samples the server's own CPU
and memory accounting around each one, stops everything, and finally writes
bench/results/<timestamp>.json and regenerates docs/benchmarks.md with its plots.

Workloads (see docs/benchmarks.md for the definitions): W1 idle connections, W2 broadcast to
all, W3 targeted sends with few and many bystanders (product only), W5 login storm during a
broadcast run (product only), W4 slow consumers during a broadcast run; then the rooms
workload (bench/rooms.py: R1 publish-to-room fan-out, R2 room isolation) against this product
and the python-socketio and Node socket.io peers; then the reconnect storm (bench/storm.py: S1,
every client cut by a server restart resumes; this product only, the peers have no resume);
then the wire formats (bench/wire.py: JSON vs protobuf, permessage-deflate on vs off, this
product beside the websockets peer).
All traffic stays on 127.0.0.0/8; every loop is bounded in count and time; child processes get
SIGTERM if this process dies (PR_SET_PDEATHSIG) and are killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import report, tables  # noqa: E402
from bench.clock import Clock  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.modes import (  # noqa: E402
    CLIENT_CORE,
    MODES,
    NOFILE,
    PING_INTERVAL,
    ROOM_SERVERS,
    SERVER_CORE,
    SERVERS,
)
from bench.rooms import RoomsBench  # noqa: E402
from bench.rooms_report import rooms_summary  # noqa: E402
from bench.storm import StormBench  # noqa: E402
from bench.storm_report import storm_summary, write_storm_block  # noqa: E402
from bench.targets import compute_targets  # noqa: E402
from bench.wire import run_wire  # noqa: E402
from bench.wire_report import render_block as render_wire  # noqa: E402
from bench.wire_report import text_table as wire_table  # noqa: E402
from bench.wire_report import write_block as write_wire  # noqa: E402
from bench.workloads import Bench  # noqa: E402

__all__ = ["main", "main_async"]


async def main_async(args: argparse.Namespace) -> int:
    """Runs every selected server's workloads, then writes the results and the docs."""
    mode = MODES["quick" if args.quick else "full"]
    clock = Clock()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {CLIENT_CORE})
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    chosen = [s for s in args.servers.split(",") if s] if args.servers else None
    only = args.rooms_only or args.storm_only or args.wire_only
    servers = [s for s in SERVERS if chosen is None or s in chosen] if not only else []
    room_servers = ([s for s in ROOM_SERVERS if chosen is None or s in chosen]
                    if not (args.no_rooms or args.storm_only or args.wire_only) else [])
    storm = (not args.no_storm and not args.rooms_only and not args.wire_only
             and (chosen is None or "product" in chosen))
    wire_servers = tuple(s for s in ("product", "websockets") if chosen is None or s in chosen)
    wire = not args.no_wire and not args.rooms_only and not args.storm_only and wire_servers
    if not shutil.which("node"):
        for lst in (servers, room_servers):
            for s in ("node", "socketio-node"):
                if s in lst:
                    clock.say(f"node not found: skipping {s}")
                    lst.remove(s)
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "schema": 1,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": mode.name,
        "config": {**asdict(mode), "connections": mode.connections,
                   "ping_interval_s": PING_INTERVAL, "server_core": SERVER_CORE,
                   "client_core": CLIENT_CORE, "nofile": NOFILE},
        "machine": {**machine_info(), "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())},
        "servers": {},
        "rooms": {},
        "storm": {},
        "wire": {},
        "note": args.note,
    }
    deadline_all = time.monotonic() + mode.budget_seconds
    tmp = tempfile.mkdtemp(prefix="bench-")
    clock.say(f"mode {mode.name}: {mode.connections} connections, servers {', '.join(servers)}; "
              f"rooms {mode.rooms} x {mode.members} on {', '.join(room_servers)}; logs in {tmp}")
    try:
        for i, name in enumerate(servers):
            left = deadline_all - time.monotonic()
            share = left / (len(servers) - i) if name != "product" else left * 0.4
            share = max(share, 30.0)
            bench = Bench(name, mode, tmp, clock, time.monotonic() + share, args.profile)
            try:
                results["servers"][name] = await bench.run()
            except Exception as exc:  # noqa: BLE001 - a failed server is reported, not fatal
                clock.say(f"{name}: FAILED {type(exc).__name__}: {exc}")
                res = bench.result
                res["error"] = f"{type(exc).__name__}: {exc}"
                results["servers"][name] = res
            finally:
                await bench.stop()
        await _rooms(mode, room_servers, tmp, clock, results["rooms"])
        if storm:
            results["storm"] = await _storm(mode, tmp, clock)
        if wire:
            results["wire"] = await run_wire(mode, tmp, clock, wire_servers)
    finally:
        results["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        results["duration_s"] = round(clock.elapsed(), 1)
    results["targets"] = compute_targets(results)
    os.makedirs(args.results_dir, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(args.results_dir, f"{stamp}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
    clock.say(f"wrote {path}")
    if not args.wire_only:
        print()
        print(tables.text_table(results))
        print()
        print(rooms_summary(results))
        print()
        print(storm_summary(results))
        print()
        print(tables.targets_table_text(results))
    if results["wire"]:
        print()
        print(wire_table(results["wire"]))
    if not args.no_docs and results["wire"] and os.path.exists(args.docs):
        write_wire(args.docs, render_wire(results["wire"], os.path.basename(path)))
        clock.say(f"wrote the wire-formats section of {args.docs}")
    if not args.no_docs and args.wire_only:
        pass  # only the wire-formats section changes
    elif not args.no_docs and args.storm_only and os.path.exists(args.docs):
        md = write_storm_block(results, args.docs, os.path.relpath(path, ROOT))
        clock.say(f"wrote the storm section of {md}")
    elif not args.no_docs:
        md = report.write_docs(results, args.docs, args.img_dir, os.path.relpath(path, ROOT))
        clock.say(f"wrote {md}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


async def _rooms(mode: Any, servers: list[str], tmp: str, clock: Clock,
                 out: dict[str, Any]) -> None:
    """Runs the rooms workload against each server in turn, within the rooms budget."""
    deadline = time.monotonic() + mode.rooms_budget_seconds
    for i, name in enumerate(servers):
        left = deadline - time.monotonic()
        share = max(left / (len(servers) - i), 30.0)
        bench = RoomsBench(name, mode, tmp, clock, time.monotonic() + share, False)
        try:
            out[name] = await bench.run()
        except Exception as exc:  # noqa: BLE001 - a failed server is reported, not fatal
            clock.say(f"{name} rooms: FAILED {type(exc).__name__}: {exc}")
            out[name] = {**bench.result, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            await bench.stop()


async def _storm(mode: Any, tmp: str, clock: Clock) -> dict[str, Any]:
    """Runs the reconnect storm against this product within its budget."""
    bench = StormBench("product", mode, tmp, clock,
                       time.monotonic() + mode.storm_budget_seconds, False)
    try:
        return await bench.run()
    except Exception as exc:  # noqa: BLE001 - a failed run is reported, not fatal
        clock.say(f"storm: FAILED {type(exc).__name__}: {exc}")
        return {**bench.result, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await bench.stop()


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the benchmark."""
    parser = argparse.ArgumentParser(description="Run the WebSocket benchmark suite.")
    parser.add_argument("--quick", action="store_true", help="small counts (two to three minutes)")
    parser.add_argument("--servers", default="",
                        help="comma-separated subset of "
                        f"{','.join(dict.fromkeys(SERVERS + ROOM_SERVERS))}")
    parser.add_argument("--rooms-only", action="store_true", help="only the rooms workload")
    parser.add_argument("--no-rooms", action="store_true", help="skip the rooms workload")
    parser.add_argument("--storm-only", action="store_true",
                        help="only the reconnect storm (S1, this product)")
    parser.add_argument("--no-storm", action="store_true", help="skip the reconnect storm")
    parser.add_argument("--wire-only", action="store_true",
                        help="only the wire formats (JSON vs protobuf, deflate on vs off)")
    parser.add_argument("--no-wire", action="store_true", help="skip the wire formats")
    parser.add_argument("--profile", action="store_true",
                        help="also record a py-spy profile of the product during W2")
    parser.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--img-dir", default=os.path.join(ROOT, "docs", "img"))
    parser.add_argument("--no-docs", action="store_true", help="write only the JSON")
    parser.add_argument("--note", default="", help="conditions of the run, shown on the page")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
