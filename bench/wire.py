"""Wire formats: JSON vs protobuf, permessage-deflate on vs off, beside the websockets peer.

    python -m bench.wire [--quick] [--rounds 2] [--phases 2]     (`make bench-wire`)

Part of `make bench` too (bench/run.py; `--no-wire` skips it, `--wire-only` runs only it).
Each server starts once with compression available (this product with
`--websocket-compression on`, the websockets peer with `compression="deflate"`, websockets'
own settings). Then, per variant (JSON or protobuf, offering permessage-deflate or not; the
order reversed every other round), the load generators connect the run's clients, and W2
broadcast phases (one alert in flight) run with two payloads: W2's own alert (about 180 bytes
of JSON, under the product's 256-byte deflate threshold) and the same alert with 1 KiB of
text in its metadata. The product encodes each event once per variant in use; the websockets
peer gets the alert already encoded (JSON text, or the same events.v1 protobuf bytes, which it
broadcasts as binary frames) and broadcasts it with `broadcast()`, compressing per connection.
Recorded per cell: the server's CPU per delivered message (median of the phases), the bytes on
the wire per delivered event (frame header and payload, as the clients received them), msgs/s
and p99 latency. Writes bench/results/wire-<timestamp>.json and a section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
import timeit
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.clock import Clock  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.modes import MODES, Mode  # noqa: E402
from bench.phases import Phases  # noqa: E402
from bench.sections import prepare_process, render_saved, save_report, update_docs  # noqa: E402
from bench.triggers import PeerTrigger  # noqa: E402
from bench.wire_report import render_block, text_table, write_block  # noqa: E402

__all__ = ["run_wire", "micro", "main", "VARIANTS", "TARGET_DEFLATE_RATIO"]

OFFER = "permessage-deflate; client_max_window_bits"  # what browsers and ws offer
PROTOBUF = "events.v1.protobuf"
VARIANTS: dict[str, dict[str, str]] = {
    "json": {},
    "json+deflate": {"extensions": OFFER},
    "protobuf": {"protocol": PROTOBUF},
    "protobuf+deflate": {"protocol": PROTOBUF, "extensions": OFFER},
}
SERVERS = ("product", "websockets")
MAX_CONNECTIONS = 5000  # each deflate client holds an inflater (~40 KiB) in the load generator
TARGET_DEFLATE_RATIO = 1.5  # compressed broadcasts cost at most this much per delivery
_WORDS = ("order", "shipped", "user", "room", "message", "status", "pending", "delivered",
          "alpha", "beta", "gamma", "delta", "2026-11-26T10:30:00Z", "true", "false", "null")


def pad_text(size: int) -> str:
    """Returns size bytes of word-like text (compresses about like JSON prose does)."""
    rng = random.Random(7)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(_WORDS) + str(rng.randrange(100)))
    return " ".join(words)[:size]


PAYLOADS = {"w2": "", "1k": pad_text(1024)}


class ProtobufTrigger(PeerTrigger):
    """The websockets peer's control socket, sending alerts as events.v1 protobuf bytes when
    `protobuf` is set (the peer broadcasts bytes as binary frames)."""

    protobuf = False

    def encode(self, event: dict[str, Any]) -> str | bytes:
        if not self.protobuf:
            return super().encode(event)
        from hub.events import Event

        return Event(event["type"], event["data"], event["timestamp"]).encode().protobuf


class WireRun(Phases):
    """One server with compression available, its clients reconnected per variant."""

    def server_argv(self) -> list[str]:
        argv = super().server_argv()
        return argv + ["--compression", "deflate"] if self.name == "websockets" else argv

    async def start(self) -> None:
        if self.name == "product":
            self.extra_args = ["--websocket-compression", "on"]
        await super().start()
        if self.name != "product":  # swap in the trigger that can send protobuf
            await self.trigger.close()
            self.trigger = ProtobufTrigger(f"ws://127.0.0.1:{self.port}/control")
            await self.trigger.open()

    async def variant(self, variant: str, connections: int, phases: int,
                      broadcasts: int) -> dict[str, Any]:
        """Connects clients offering variant, runs the phases per payload, disconnects."""
        if isinstance(self.trigger, ProtobufTrigger):
            self.trigger.protobuf = "protobuf" in variant
        tokens = ([t for t in self.seeded.user_tokens for _ in range(self.mode.tabs)]
                  if self.seeded else [""])
        c = await self.pool.connect("127.0.0.1", self.port, tokens, connections, self.sources,
                                    timeout=120.0, offers=VARIANTS[variant], small_every=0)
        await self._settle(1.5)
        out: dict[str, Any] = {"connected": c["ok"], "failed": c["failed"]}
        for size, pad in PAYLOADS.items():
            runs = []
            for i in range(phases):
                run = await self.broadcast_phase(f"{variant}-{size}-{i}", broadcasts, 60.0,
                                                 pad=pad)
                st = await self.pool.stats()
                run["bytes_per_event"] = st["wire_bytes"] / max(1, st["received"])
                runs.append({k: v for k, v in run.items() if k != "latency_quantiles"})
            out[size] = summarize(runs)
            self.say(f"{variant} {size}: {out[size]['cpu_us_per_msg']:.2f} us/msg, "
                     f"{out[size]['bytes_per_event']:.0f} B/event, "
                     f"{out[size]['msgs_per_s']:,.0f} msgs/s")
        await self.pool.all({"cmd": "close_all"})
        await self._settle(1.5)
        return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Returns the medians of one cell's phases."""
    return {
        "cpu_us_per_msg": statistics.median(r["cpu_us_per_msg"] or 0.0 for r in runs),
        "bytes_per_event": statistics.median(r["bytes_per_event"] for r in runs),
        "msgs_per_s": statistics.median(r["msgs_per_s"] or 0.0 for r in runs),
        "p99_ms": statistics.median(r["latency"]["p99_ms"] for r in runs),
        "delivered": sum(r["delivered"] for r in runs),
        "expected": sum(r["expected"] for r in runs),
        "phases": runs,
    }


async def measure_server(name: str, mode: Mode, tmp: str, clock: Clock, rounds: int,
                         phases: int) -> dict[str, Any]:
    """Runs every variant against one server for `rounds` rounds (ABBA order)."""
    connections = min(mode.connections, MAX_CONNECTIONS)
    run = WireRun(name, mode, tmp, clock, time.monotonic() + 1800, False)
    cells: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    try:
        await run.start()
        for r in range(rounds):
            order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                cells[variant].append(await run.variant(variant, connections, phases,
                                                        mode.w2_broadcasts))
    finally:
        await run.stop()
    out: dict[str, Any] = {"connections": connections}
    for variant, results in cells.items():
        out[variant] = {size: _merge([res[size] for res in results]) for size in PAYLOADS}
        out[variant]["connected"] = min(res["connected"] for res in results)
    return out


def _merge(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Returns the median over rounds of one cell (each round already a median of phases)."""
    keys = ("cpu_us_per_msg", "bytes_per_event", "msgs_per_s", "p99_ms")
    merged = {k: statistics.median(c[k] for c in cells) for k in keys}
    merged["rounds"] = [{k: c[k] for k in keys} for c in cells]
    merged["delivered"] = sum(c["delivered"] for c in cells)
    merged["expected"] = sum(c["expected"] for c in cells)
    return merged


def micro(repeat: int = 2000) -> dict[str, dict[str, float]]:
    """Times the once-per-publish work in-process: us to make each variant's frame."""
    from hub.events import DEFLATE, JSON, PROTOBUF, Event

    out: dict[str, dict[str, float]] = {}
    for size, pad in PAYLOADS.items():
        metadata = {"pad": pad, "seq": 1, "t": 1.0} if pad else {"seq": 1, "t": 1.0}
        data = {"message": "bench", "priority": "normal", "metadata": metadata, "sent_by": 1}
        row = {}
        for name, variant in (("json", JSON), ("json+deflate", JSON | DEFLATE),
                              ("protobuf", PROTOBUF), ("protobuf+deflate", PROTOBUF | DEFLATE)):
            def make(variant: int = variant, data: dict[str, Any] = data) -> None:
                Event("system.alert", data, "2026-11-26T10:30:00.000Z").encode().frame_for(
                    variant)
            row[name] = min(timeit.repeat(make, number=repeat, repeat=3)) / repeat * 1e6
        out[size] = row
    return out


def targets(servers: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns the deflate-on/off ratio per delivery for each format on the 1 KiB payload."""
    rows = []
    product = servers.get("product")
    if not product:
        return rows
    for fmt in ("json", "protobuf"):
        on = product[f"{fmt}+deflate"]["1k"]["cpu_us_per_msg"]
        off = product[fmt]["1k"]["cpu_us_per_msg"]
        ratio = on / off if off else float("inf")
        rows.append({"target": f"compressed / uncompressed CPU per delivery, {fmt}, 1 KiB",
                     "value": ratio, "limit": TARGET_DEFLATE_RATIO,
                     "met": ratio <= TARGET_DEFLATE_RATIO})
    return rows


async def run_wire(mode: Mode, tmp: str, clock: Clock, servers: tuple[str, ...] = SERVERS,
                   rounds: int = 2, phases: int = 2) -> dict[str, Any]:
    """Measures every server and variant; returns the wire section of the results."""
    started = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                              "mode": mode.name, "rounds": rounds, "phases": phases,
                              "broadcasts": mode.w2_broadcasts,
                              "payload_bytes": {k: len(v) for k, v in PAYLOADS.items()},
                              "loadavg_start": os.getloadavg(), "servers": {}}
    for name in servers:
        clock.say(f"wire formats: {name}")
        try:
            report["servers"][name] = await measure_server(name, mode, tmp, clock, rounds,
                                                           phases)
        except Exception as exc:  # noqa: BLE001 - a failed server is reported, not fatal
            clock.say(f"wire {name}: FAILED {type(exc).__name__}: {exc}")
            report["servers"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    report["micro"] = await asyncio.to_thread(micro)
    report["loadavg_end"] = os.getloadavg()
    ok = {k: v for k, v in report["servers"].items() if "error" not in v}
    report["targets"] = targets(ok)
    return report


async def main_async(args: argparse.Namespace) -> int:
    """Runs the wire-formats comparison alone, prints it and updates the docs section."""
    mode = MODES["quick" if args.quick else "full"]
    clock = Clock()
    prepare_process()
    tmp = tempfile.mkdtemp(prefix="bench-wire-")
    servers = tuple(s for s in args.servers.split(",") if s) or SERVERS
    report = await run_wire(mode, tmp, clock, servers, args.rounds, args.phases)
    report["machine"] = machine_info()
    path = save_report(report, args.results_dir, "wire")
    print(text_table(report))
    update_docs(report, path, args.docs, render_block, write_block, clock)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode's sizes")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--phases", type=int, default=2, help="phases per cell (default 2)")
    parser.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                        help="page whose wire-formats section to update ('' for none)")
    parser.add_argument("--micro", action="store_true",
                        help="only time the once-per-publish encodings in-process")
    parser.add_argument("--render", metavar="JSON",
                        help="only rewrite the docs section from a saved wire-*.json")
    args = parser.parse_args(argv)
    if args.micro:
        print(json.dumps(micro(), indent=1))
        return 0
    if args.render:
        return render_saved(args.render, args.docs, render_block, write_block)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
