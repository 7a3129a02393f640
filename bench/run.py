"""The orchestrator, `python -m bench.run` (`make bench`, `bench-quick`, `bench-hooks`): runs the
chosen parts in turn, then writes the results and the sections they measured."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from typing import Any

from bench import cli, modes
from bench.modes import ROOM_SERVERS, SERVERS, Clock, Mode
from bench.server import run_guarded
from bench.workloads.broadcast import Bench
from bench.workloads.cluster import ClusterBench
from bench.workloads.hooks import run_hooks
from bench.workloads.rooms import RoomsBench
from bench.workloads.storm import StormBench
from bench.workloads.wire import run_wire

__all__ = ["main", "PARTS"]

PARTS = {"rooms": "the rooms workload (R1, R2)", "storm": "the reconnect storm (S1)",
         "wire": "the wire formats (JSON vs protobuf, deflate on vs off)",
         "hooks": "the publish hook on vs off (R1)",
         "cluster": "the cluster workloads (C1-C3; PostgreSQL, redis-server and nginx)",
         "workers": "--workers 2 vs 1 (C4; PostgreSQL and redis-server)"}


def chosen(args: argparse.Namespace) -> tuple[set[str], list[str]]:
    """Returns the parts to run ("servers" is W1-W5) and the servers allowed by --servers."""
    only = {p for p in PARTS if getattr(args, f"{p}_only")}
    parts = only or {"servers", *(p for p in PARTS if not getattr(args, f"no_{p}"))}
    names = [s for s in dict.fromkeys(SERVERS + ROOM_SERVERS)
             if not args.servers or s in args.servers.split(",")]
    if not shutil.which("node"):
        print("node not found: skipping the Node peers", flush=True)
        names = [s for s in names if s not in ("node", "socketio-node")]
    if "product" not in names:
        parts -= {"storm", "cluster", "hooks", "workers"}
    return parts, names


async def measure(args: argparse.Namespace, mode: Mode, clock: Clock, tmp: str) -> dict[str, Any]:
    """Runs every chosen part within its budget; returns the results."""
    parts, names = chosen(args)
    servers = [s for s in SERVERS if s in names] if "servers" in parts else []
    room_servers = [s for s in ROOM_SERVERS if s in names] if "rooms" in parts else []
    results: dict[str, Any] = {
        "config": {**dataclasses.asdict(mode), "connections": mode.connections,
                   "ping_interval_s": modes.PING_INTERVAL, "server_core": modes.SERVER_CORE,
                   "client_core": modes.CLIENT_CORE, "nofile": modes.NOFILE},
        "servers": {}, "rooms": {}, "storm": {}, "wire": {}, "hooks": {}, "cluster": {}}
    clock.say(f"{mode.connections} connections, servers {', '.join(servers) or 'none'}; parts "
              f"{', '.join(sorted(parts))}")
    deadline = time.monotonic() + mode.budget_seconds
    for i, name in enumerate(servers):
        left = deadline - time.monotonic()
        share = max(left * 0.4 if name == "product" else left / (len(servers) - i), 30.0)
        results["servers"][name] = await run_guarded(Bench(
            name, mode, tmp, clock, time.monotonic() + share, args.profile), name)
    deadline = time.monotonic() + mode.rooms_budget_seconds
    for i, name in enumerate(room_servers):
        share = max((deadline - time.monotonic()) / (len(room_servers) - i), 30.0)
        results["rooms"][name] = await run_guarded(RoomsBench(
            name, mode, tmp, clock, time.monotonic() + share), f"{name} rooms")
    if "storm" in parts:
        results["storm"] = await run_guarded(StormBench(
            "product", mode, tmp, clock, time.monotonic() + mode.storm_budget_seconds), "storm")
    wire_servers = tuple(s for s in ("product", "websockets") if s in names)
    if "wire" in parts and wire_servers:
        results["wire"] = {**cli.header(mode), **await run_wire(mode, tmp, clock, wire_servers)}
    if "hooks" in parts:
        results["hooks"] = {**cli.header(mode), "note": args.note,
                            **await run_hooks(mode, tmp, clock)}
    if parts & {"cluster", "workers"}:
        results.update(await ClusterBench(mode, tmp, clock).run(parts))
    return results


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the benchmark."""
    p = cli.parser("Run the WebSocket benchmark suite.")
    p.add_argument("--servers", default="", help="comma-separated subset of "
                   f"{','.join(dict.fromkeys(SERVERS + ROOM_SERVERS))}")
    for part, what in PARTS.items():
        p.add_argument(f"--{part}-only", action="store_true", help=f"only {what}")
        p.add_argument(f"--no-{part}", action="store_true", help=f"skip {what}")
    p.add_argument("--profile", action="store_true",
                   help="also record a py-spy profile of the product during W2")
    return cli.main("run", p, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
