"""The reconnect storm (S1): every client cut by a clean restart of this product resumes with
since/epoch while alerts flow, then each client's numbers are checked (C3 reuses the parts)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from bench.phases import Phases
from bench.procs import Pool
from bench.stats import percentile
from bench.triggers import ProductTrigger

__all__ = ["StormBench", "Publisher", "wait_status", "check_clients", "storm_figures", "peak_rate"]


class Publisher:
    """Publishes numbered alerts one after the other at a fixed rate; records the acked ones."""

    def __init__(self, base: str, admin_token: str, rate: float) -> None:
        self.trigger = ProductTrigger(base, admin_token, timed=False, timeout=5.0)
        self.rate, self.acked, self.failed, self.running = rate, [], 0, True
        self.task: asyncio.Future | None = None

    def start(self, limit: float) -> None:
        """Starts publishing for at most limit seconds; seq counts every attempt."""

        async def run() -> None:
            """Publishes at the rate until stopped or out of time."""
            began = time.monotonic()
            for seq in range(int(limit * self.rate) + 1):
                if not self.running:
                    return
                await asyncio.sleep(max(0.0, began + seq / self.rate - time.monotonic()))
                try:
                    await self.trigger.send(seq)
                    self.acked.append(seq)
                except Exception:  # noqa: BLE001 - refused during the restart: not expected
                    self.failed += 1

        self.task = asyncio.ensure_future(run())

    async def stop(self) -> None:
        """Stops publishing and closes the HTTP client."""
        self.running = False
        if self.task is not None:
            await self.task
        await self.trigger.close()


async def wait_status(pool: Pool, cut: float, timeout: float,
                      settled: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Polls the clients' storm status until settled(status) or timeout; returns the last."""
    stop = time.monotonic() + timeout
    while True:
        status = await pool.summed({"cmd": "storm_status", "cut": cut})
        if settled(status) or time.monotonic() > stop:
            return status
        await asyncio.sleep(0.1)


async def check_clients(pool: Pool, pub: Publisher, cut: float, clients: int,
                        listen_s: float) -> dict[str, Any]:
    """Checks every client's numbers, stops them, returns the figures."""
    await asyncio.sleep(2.0)  # the last events reach every client
    check = await pool.summed({"cmd": "storm_check", "acked": pub.acked, "cut": cut}, 120)
    await pool.all({"cmd": "storm_stop"})
    return {**{k: v for k, v in check.items() if not isinstance(v, list)},
            **storm_figures(check, clients, listen_s), "published": len(pub.acked),
            "publish_failed": pub.failed, "rate": pub.rate}


def peak_rate(times: list[float], width: float) -> float | None:
    """Returns the most events in any window of width seconds (fixed bins), per second."""
    bins = collections.Counter(int(t // width) for t in times)
    return max(bins.values()) / width if bins else None


def storm_figures(check: dict[str, Any], clients: int, listen_s: float) -> dict[str, Any]:
    """Returns the recovery figures from the summed checks; times are seconds from the cut."""
    rec, resumed = sorted(check["recovery_s"]), sorted(check["resumed_at"])
    last, all_ok = rec[-1] if rec else None, len(rec) == clients
    window = (last - listen_s) if last is not None and last > listen_s else None
    hs_window = (resumed[-1] - listen_s) if resumed and resumed[-1] > listen_s else None
    return {"recovered_clients": len(rec), "all_recovered": all_ok,
            "all_recovered_s": last if all_ok else None,
            "recovery_p50_s": percentile(rec, 50) if rec else None,
            "recovery_p99_s": percentile(rec, 99) if rec else None, "recovery_max_s": last,
            "resumed_clients": len(resumed),
            "handshakes_per_s": len(resumed) / hs_window if hs_window else None,
            "handshakes_per_s_peak": peak_rate(resumed, 0.5),
            "replayed_per_s": check["replayed"] / window if window else None}


class StormBench(Phases):
    """Runs the reconnect storm against this product and returns its results."""

    data_name = "storm-data"

    async def run(self) -> dict[str, Any]:
        """Connects, streams events, restarts the server, waits for the resumes, checks."""
        m, res = self.mode, self.result
        await self.start(users=max(1, m.storm_clients // m.tabs), trigger=False)
        self.say(f"S1 connecting {m.storm_clients} feed clients")
        c = await self.pool.connect(self.port, self.seeded.user_tokens, m.storm_clients,
                                    cmd="storm_connect", seed=11)
        ok = c["ok"]
        res.update(clients=ok, connect_wall_s=c["wall_s"], connect_errors=c["errors"])
        self.say(f"S1 {ok} connected in {c['wall_s']:.1f} s {c['errors']}")
        await asyncio.sleep(1.0)
        pub = Publisher(f"http://127.0.0.1:{self.port}", self.seeded.admin_token, m.storm_rate)
        pub.start(max(10.0, self.time_left() - 20))
        cpu_a, t_a = self.cpu(), time.monotonic()
        try:
            await asyncio.sleep(m.storm_before)  # the steady stream: the baseline of "net"
            res["baseline_cpu_per_s"] = (self.cpu() - cpu_a) / (time.monotonic() - t_a)
            cut = time.time()
            self.say("S1 restarting the server (SIGTERM, start again)")
            t0 = time.monotonic()
            await self.server.stop(grace=20.0)
            t1 = time.monotonic()
            await self.launch("-2")
            res["shutdown_s"], res["restart_s"] = t1 - t0, time.monotonic() - t1
            listen_s, cpu0 = time.time() - cut, self.cpu()
            status = await wait_status(self.pool, cut, m.storm_timeout, lambda s: s[
                "resumed"] >= ok and s["recovered"] + s["not_recovered"] >= ok)
            res.update(storm_cpu_s=self.cpu() - cpu0, storm_wall_s=time.time() - cut - listen_s)
            self.say(f"S1 status {status}")
            await asyncio.sleep(m.storm_after)
        finally:
            await pub.stop()
        res.update(await check_clients(self.pool, pub, cut, ok, listen_s), listen_s=listen_s,
                   by_type=(await self.pool.stats())["by_type"])
        cpu, replayed, resumed = res["storm_cpu_s"], res["replayed"], res["resumed_clients"]
        net = cpu - res["baseline_cpu_per_s"] * res["storm_wall_s"]
        res.update(cpu_us_per_replayed=1e6 * cpu / replayed if replayed else None,
                   cpu_us_per_resume=1e6 * cpu / resumed if resumed else None,
                   cpu_us_per_replayed_net=1e6 * net / replayed if replayed else None)
        self.say(f"S1 all recovered {res['all_recovered']} in {res['recovery_max_s']} s "
                 f"(p50 {res['recovery_p50_s']}), replayed {replayed}, gaps {res['gaps']}, "
                 f"duplicates {res['duplicates']}, out of order {res['out_of_order']}, "
                 f"not recovered {res['not_recovered']}, CPU {cpu:.2f} s")
        return res
