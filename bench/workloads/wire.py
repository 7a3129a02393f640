"""Wire formats, `python -m bench.workloads.wire` (`make bench-wire`, and part of `make bench`):
JSON vs protobuf and permessage-deflate on vs off, beside the websockets peer."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import timeit
from typing import Any

from bench import cli
from bench.modes import Clock, Mode
from bench.phases import Phases
from bench.server import guarded
from bench.stats import medians
from bench.triggers import PeerTrigger, alert_data

__all__ = ["VARIANTS", "PAYLOADS", "SERVERS", "run_wire", "micro", "main"]

OFFER = "permessage-deflate; client_max_window_bits"  # what browsers and ws offer
PROTOBUF = "events.v1.protobuf"
VARIANTS: dict[str, dict[str, str]] = {
    "json": {},
    "json+deflate": {"extensions": OFFER},
    "protobuf": {"protocol": PROTOBUF},
    "protobuf+deflate": {"protocol": PROTOBUF, "extensions": OFFER},
    "sse": {"path": "/sse"},  # Server-Sent Events (this product only)
}
SERVERS = ("product", "websockets")
EXTRA_ARGS = {"product": ("--websocket-compression", "on"),
              "websockets": ("--compression", "deflate")}
MAX_CONNECTIONS = 5000  # each deflate client holds an inflater (~40 KiB) in the load generator
CELL = ("cpu_us_per_msg", "bytes_per_event", "msgs_per_s", "p99_ms")
_WORDS = ("order", "shipped", "user", "room", "message", "status", "pending", "delivered",
          "alpha", "beta", "gamma", "delta", "2026-11-26T10:30:00Z", "true", "false", "null")


def pad_text(size: int) -> str:
    """Returns size bytes of word-like text (compresses about like JSON prose does)."""
    rng = random.Random(7)  # size words are more than enough: each has 2 characters or more
    return " ".join(rng.choice(_WORDS) + str(rng.randrange(100)) for _ in range(size))[:size]


PAYLOADS = {"w2": "", "1k": pad_text(1024)}


def _cell(rows: list[dict[str, Any]], key: str, kept: list[Any]) -> dict[str, Any]:
    """Returns a cell from its phases or rounds: medians and totals."""
    return {**medians(rows, CELL), key: kept, "delivered": sum(r["delivered"] for r in rows),
            "expected": sum(r["expected"] for r in rows)}


class WireRun(Phases):
    """One server with compression available, its clients reconnected per variant."""

    data_name = "wire-data"

    async def variant(self, variant: str, connections: int, phases: int) -> dict[str, Any]:
        """Connects clients offering variant and runs the phases per payload."""
        if isinstance(self.trigger, PeerTrigger):  # the peer broadcasts bytes as binary frames
            self.trigger.protobuf = "protobuf" in variant
        c = await self.connect(connections, **VARIANTS[variant], small_rcvbuf_every=0)
        await asyncio.sleep(1.5)
        out: dict[str, Any] = {"connected": c["ok"], "failed": c["failed"]}
        for size, pad in PAYLOADS.items():
            runs = []
            for i in range(phases):
                run = await self.broadcast_phase(f"{variant}-{size}-{i}", self.mode.w2_broadcasts,
                                                 60.0, pad=pad)
                runs.append({k: v for k, v in run.items() if k != "latency_quantiles"})
            cell = out[size] = _cell(runs, "phases", runs)
            self.say(f"{variant} {size}: {cell['cpu_us_per_msg']:.2f} us/msg, "
                     f"{cell['bytes_per_event']:.0f} B/event, {cell['msgs_per_s']:,.0f} msgs/s")
        await self.pool.all({"cmd": "close_all"})
        await asyncio.sleep(1.5)
        return out


async def measure_server(name: str, mode: Mode, tmp: str, clock: Clock, rounds: int,
                         phases: int) -> dict[str, Any]:
    """Runs every variant against one server in ABBA rounds."""
    connections = min(mode.connections, MAX_CONNECTIONS)
    run = WireRun(name, mode, tmp, clock, time.monotonic() + 1800, extra_args=EXTRA_ARGS[name])
    variants = [v for v in VARIANTS if name == "product" or v != "sse"]
    cells: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    try:
        await run.start()
        for r in range(rounds):
            for variant in (variants if r % 2 == 0 else list(reversed(variants))):
                cells[variant].append(await run.variant(variant, connections, phases))
    finally:
        await run.stop()
    out: dict[str, Any] = {"connections": connections}
    for variant, results in cells.items():
        out[variant] = {"connected": min(res["connected"] for res in results)}
        for size in PAYLOADS:
            per_round = [res[size] for res in results]
            out[variant][size] = _cell(per_round, "rounds",
                                       [{k: c[k] for k in CELL} for c in per_round])
    return out


def micro(repeat: int = 2000) -> dict[str, dict[str, float]]:
    """Times the once-per-publish work in-process: us to make each variant's frame."""
    from hub.events import DEFLATE, JSON, PROTOBUF, SSE, Event

    flags = {"json": JSON, "json+deflate": JSON | DEFLATE, "protobuf": PROTOBUF,
             "protobuf+deflate": PROTOBUF | DEFLATE, "sse": SSE}
    out: dict[str, dict[str, float]] = {}
    for size, pad in PAYLOADS.items():
        data, out[size] = alert_data(1, pad), {}
        for name, variant in flags.items():
            def make(variant: int = variant, data: dict[str, Any] = data) -> None:
                """Encodes and frames the alert from scratch."""
                Event("system.alert", data, "2026-11-26T10:30:00.000Z").encode().frame_for(variant)
            out[size][name] = min(timeit.repeat(make, number=repeat, repeat=3)) / repeat * 1e6
    return out


async def run_wire(mode: Mode, tmp: str, clock: Clock, servers: tuple[str, ...] = SERVERS,
                   rounds: int = 2, phases: int = 2) -> dict[str, Any]:
    """Measures every server and variant; returns the wire formats' report body."""
    out: dict[str, Any] = {"rounds": rounds, "phases": phases, "broadcasts": mode.w2_broadcasts,
                           "payload_bytes": {k: len(v) for k, v in PAYLOADS.items()}, "servers": {}}
    for name in servers:
        clock.say(f"wire formats: {name}")
        out["servers"][name] = await guarded(measure_server(name, mode, tmp, clock, rounds,
                                                            phases), f"wire {name}", clock)
    out["micro"] = await asyncio.to_thread(micro)
    return out


async def run(args: argparse.Namespace, mode: Mode, clock: Clock, tmp: str) -> dict[str, Any]:
    """Runs the comparison for the command line."""
    servers = tuple(s for s in args.servers.split(",") if s) or SERVERS
    return await run_wire(mode, tmp, clock, servers, args.rounds, args.phases)


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the comparison (or only --micro)."""
    p = cli.parser("JSON vs protobuf, permessage-deflate on vs off, beside websockets.",
                   "the once-per-publish encodings")
    p.add_argument("--servers", default=",".join(SERVERS),
                   help=f"comma-separated subset of {','.join(SERVERS)}")
    p.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    p.add_argument("--phases", type=int, default=2, help="phases per cell (default 2)")
    return cli.main("wire", p, run, argv, micro)


if __name__ == "__main__":
    sys.exit(main())
