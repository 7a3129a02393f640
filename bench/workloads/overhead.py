"""Metrics overhead, `python -m bench.workloads.overhead` (`make bench-metrics`): W2's CPU per
delivery with --metrics on and off in ABBA rounds, and --micro's in-process timing."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

from bench import cli
from bench.modes import Clock, Mode
from bench.phases import alternate
from bench.stats import medians
from bench.workloads.broadcast import Bench

__all__ = ["summarize", "abba", "micro", "main"]


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Returns the medians of one setting's phases: CPU per message, throughput and p99."""
    return {**medians(runs, ("cpu_us_per_msg", "msgs_per_s")),
            "p99_ms": statistics.median(r["latency"]["p99_ms"] for r in runs)}


async def abba(mode: Mode, tmp: str, clock: Clock, order: tuple[str, str], over: str,
               rounds: int, phases: int,
               extra: Callable[[str, int], tuple[str, ...]]) -> dict[str, Any]:
    """Runs W2 phases on this product started per setting (options extra(setting, round))."""

    async def one(setting: str, r: int, path: str) -> dict[str, Any]:
        """Starts the product, connects the mode's clients and runs the W2 phases."""
        bench = Bench("product", mode, path, clock, time.monotonic() + 600,
                      extra_args=extra(setting, r))
        runs = []
        try:
            await bench.start()
            c = await bench.connect(mode.connections)
            bench.say(f"{c['ok']} connected, {c['failed']} failed")
            await asyncio.sleep(2.0)
            for i in range(phases):
                run = await bench.broadcast_phase(f"w2-{i}", mode.w2_broadcasts, 60.0)
                bench.say(f"W2 phase {i}: {run['cpu_us_per_msg']:.2f} us/msg, "
                          f"{run['msgs_per_s']:,.0f} msgs/s, p99 {run['latency']['p99_ms']:.1f} ms")
                runs.append({k: v for k, v in run.items() if k != "latency_quantiles"})
        finally:
            await bench.stop()
        bench.say(f"{setting}: {summarize(runs)['cpu_us_per_msg']:.2f} us/msg")
        return {"phases": runs, **summarize(runs)}

    return await alternate(tmp, order, over, rounds, "cpu_us_per_msg", one)


def micro(connections: int = 10_000, publishes: int = 200, rounds: int = 10) -> dict[str, float]:
    """Times Hub.publish in-process (no-op sockets) with and without the hook."""
    from types import SimpleNamespace

    from app import make_hub
    from hub.broker import MemoryBroker
    from hub.client import Client
    from hub.events import Event
    from hub.messages import ALL
    from services.metrics import Metrics, Sources

    hub = make_hub(MemoryBroker())  # observe_delivery is set per round below
    # A connection whose send costs almost nothing, so the hub's own work dominates.
    sink = SimpleNamespace(write_frame=lambda frame: True, backlog=lambda: (0, 0),
                           close=lambda code, reason: None)
    for i in range(connections):
        hub.register(Client(sink, i, "user", f"s{i}", 0))
    metrics = Metrics(Sources(hub, SimpleNamespace(status="ok", checks={})))  # type: ignore[arg-type]
    times: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(rounds):
        for setting in (("on", "off") if r % 2 == 0 else ("off", "on")):
            hub.observe_delivery = metrics.observe_delivery if setting == "on" else None
            began = time.process_time()
            for n in range(publishes):
                hub.publish(Event("system.alert", {"message": "x", "n": n}), ALL)
            times[setting].append((time.process_time() - began) / (publishes * connections))
    on, off = (statistics.median(times[k]) * 1e6 for k in ("on", "off"))
    hook = timeit.timeit(lambda: metrics.observe_delivery(0.001), number=100_000,
                         timer=time.process_time) / 100_000
    return {"us_per_delivery_on": on, "us_per_delivery_off": off, "ratio": on / off,
            "hook_us_per_publish": hook * 1e6,
            "connections": connections, "publishes": publishes, "rounds": rounds}


async def run(args: argparse.Namespace, mode: Mode, clock: Clock, tmp: str) -> dict[str, Any]:
    """Runs the on/off rounds and the in-process timing; returns the report's body."""
    out = await abba(mode, tmp, clock, ("on", "off"), "on", args.rounds, args.phases,
                     lambda setting, _: ("--metrics", setting))
    clock.say("in-process Hub.publish timing with and without the metrics hook")
    return {"connections": mode.connections, **out, "micro": await asyncio.to_thread(micro)}


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the comparison (or only --micro)."""
    p = cli.parser("W2 CPU per delivery, metrics on vs off.",
                   "Hub.publish with and without the metrics hook")
    p.add_argument("--rounds", type=int, default=2, help="ABBA rounds (default 2)")
    p.add_argument("--phases", type=int, default=3, help="W2 phases per start (default 3)")
    return cli.main("overhead", p, run, argv, micro)


if __name__ == "__main__":
    sys.exit(main())
