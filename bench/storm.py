"""The reconnect storm (S1) against this product: every client cut at once, all resume.

`storm_clients` feed clients connect with real JWTs (spread over the load-generator
processes and source addresses); an admin publishes numbered system.alert broadcasts
(`metadata.seq`) at `storm_rate` per second through POST /ws/broadcast, one after the other.
After `storm_before` seconds the server is restarted cleanly: SIGTERM (it closes every
socket with 1001 and keeps the feed's epoch and history), then started again on the same
data dir and port, while the events keep coming (publishes refused during the restart are
not acknowledged and not counted as expected). Every client reconnects with full-jitter
backoff and `since`/`epoch` of the last event it got (bench/stormclient.py). Once every
client has resumed, events flow `storm_after` more seconds; then each client's numbers are
checked against the acknowledged publishes: no gap, no duplicate, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from bench.modes import SECRET, SERVER_CORE, TOKEN_TTL
from bench.procs import Proc, pinned
from bench.server import ServerRun
from bench.stats import percentile

__all__ = ["StormBench", "Publisher", "storm_figures", "peak_rate"]


class Publisher:
    """Publishes numbered alerts one after the other at a fixed rate; records the acked ones."""

    def __init__(self, base: str, admin_token: str, rate: float) -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.url = base + "/ws/broadcast"
        self.headers = {"Authorization": f"Bearer {admin_token}",
                        "Content-Type": "application/json"}
        self.http = AsyncHTTPClient(force_instance=True)
        self.rate = rate
        self.acked: list[int] = []
        self.failed = 0
        self.running = True

    async def run(self, limit: float) -> None:
        """Publishes until stopped or limit seconds have passed; seq counts every attempt."""
        began = time.monotonic()
        for seq in range(int(limit * self.rate) + 1):
            if not self.running:
                return
            delay = began + seq / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.dumps({"message": "storm", "priority": "normal",
                               "metadata": {"seq": seq}}, separators=(",", ":"))
            try:
                await self.http.fetch(self.url, method="POST", body=body, headers=self.headers,
                                      connect_timeout=1, request_timeout=5)
                self.acked.append(seq)
            except Exception:  # noqa: BLE001 - refused during the restart: not expected
                self.failed += 1

    def close(self) -> None:
        """Closes the HTTP client."""
        self.http.close()


def peak_rate(times: list[float], width: float) -> float | None:
    """Returns the most events in any window of width seconds (fixed bins), per second."""
    bins: dict[int, int] = {}
    for t in times:
        bins[int(t // width)] = bins.get(int(t // width), 0) + 1
    return max(bins.values()) / width if bins else None


def storm_figures(check: dict[str, Any], clients: int, listen_s: float) -> dict[str, Any]:
    """Returns the recovery figures from the summed checks; times are seconds from the cut."""
    rec = sorted(check["recovery_s"])
    resumed = sorted(check["resumed_at"])
    last = rec[-1] if rec else None
    all_ok = len(rec) == clients
    window = (last - listen_s) if last is not None and last > listen_s else None
    hs_window = (resumed[-1] - listen_s) if resumed and resumed[-1] > listen_s else None
    return {
        "recovered_clients": len(rec),
        "all_recovered": all_ok,
        "all_recovered_s": last if all_ok else None,
        "recovery_p50_s": percentile(rec, 50) if rec else None,
        "recovery_p99_s": percentile(rec, 99) if rec else None,
        "recovery_max_s": last,
        "resumed_clients": len(resumed),
        "handshakes_per_s": len(resumed) / hs_window if hs_window else None,
        "handshakes_per_s_peak": peak_rate(resumed, 0.5),
        "replayed_per_s": check["replayed"] / window if window else None,
    }


class StormBench(ServerRun):
    """Runs the reconnect storm against this product and returns its results."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_dir = os.path.join(self.tmp, "storm-data")

    async def start(self) -> None:
        """Seeds users, then starts the server and the load generators (no trigger)."""
        from bench.seed import seed

        users = max(1, self.mode.storm_clients // self.mode.tabs)
        self.say(f"seeding {users} users + target + admin")
        self.seeded = await asyncio.to_thread(seed, self.data_dir, SECRET, users, TOKEN_TTL)
        await self.launch()

    async def restart(self) -> tuple[float, float]:
        """SIGTERMs the server and starts it again on the same data dir and port; returns the
        seconds the shutdown took and the seconds until it listened again."""
        t0 = time.monotonic()
        await self.server.stop(grace=20.0)
        t1 = time.monotonic()
        self.server = Proc(self.name, pinned(SERVER_CORE, self.server_argv()),
                           os.path.join(self.tmp, f"{self.name}-storm-2.log"))
        await self.server.start()
        await self._wait_port()
        return t1 - t0, time.monotonic() - t1

    async def _connect(self, count: int) -> dict[str, Any]:
        """Opens count storm clients spread over the workers."""
        workers = self.pool.workers
        tokens = self.seeded.user_tokens
        shares = [count // len(workers) + (i < count % len(workers)) for i in range(len(workers))]
        calls, start = [], 0
        for i, (w, share) in enumerate(zip(workers, shares, strict=True)):
            toks = [tokens[(start + k) % len(tokens)] for k in range(share)]
            start += share
            calls.append(w.call({"cmd": "storm_connect", "host": "127.0.0.1", "port": self.port,
                                 "tokens": toks, "sources": self.sources, "seed": 11 + i,
                                 "base": 0.2, "cap": 2.0, "concurrency": 32,
                                 "timeout": 120}, 180))
        began = time.monotonic()
        replies = await asyncio.gather(*calls)
        errors: dict[str, int] = {}
        for r in replies:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"ok": sum(r["ok"] for r in replies), "errors": errors,
                "wall_s": time.monotonic() - began}

    async def _status(self, cut: float) -> dict[str, int]:
        """Returns the workers' storm status summed."""
        out: dict[str, int] = {}
        for r in await self.pool.all({"cmd": "storm_status", "cut": cut}):
            for k, v in r.items():
                if k != "id":
                    out[k] = out.get(k, 0) + v
        return out

    async def run(self) -> dict[str, Any]:
        """Connects, streams events, restarts the server, waits for the resumes, checks."""
        m = self.mode
        await self.start()
        self.say(f"S1 connecting {m.storm_clients} feed clients")
        c = await self._connect(m.storm_clients)
        res = self.result
        res["clients"], res["connect_wall_s"], res["connect_errors"] = (
            c["ok"], c["wall_s"], c["errors"])
        self.say(f"S1 {c['ok']} connected in {c['wall_s']:.1f} s {c['errors']}")
        await self._settle(1.0)
        pub = Publisher(f"http://127.0.0.1:{self.port}", self.seeded.admin_token, m.storm_rate)
        task = asyncio.ensure_future(pub.run(max(10.0, self.time_left() - 20)))
        try:
            await asyncio.sleep(m.storm_before)
            cpu_a, t_a = self.cpu(), time.monotonic()
            await asyncio.sleep(1.0)
            res["baseline_cpu_per_s"] = (self.cpu() - cpu_a) / (time.monotonic() - t_a)
            cut = time.time()
            self.say("S1 restarting the server (SIGTERM, start again)")
            res["shutdown_s"], res["restart_s"] = await self.restart()
            listen_s = time.time() - cut
            cpu0 = self.cpu()
            status: dict[str, int] = {}
            for _ in range(int(m.storm_timeout * 10)):
                status = await self._status(cut)
                if status["resumed"] >= c["ok"] and status["recovered"] + status[
                        "not_recovered"] >= c["ok"]:
                    break
                await asyncio.sleep(0.1)
            res["storm_cpu_s"] = self.cpu() - cpu0
            res["storm_wall_s"] = time.time() - cut - listen_s
            self.say(f"S1 status {status}")
            await asyncio.sleep(m.storm_after)
        finally:
            pub.running = False
            await task
            pub.close()
        await asyncio.sleep(2.0)  # the last events reach every client
        checks = await self.pool.all({"cmd": "storm_check", "acked": pub.acked, "cut": cut},
                                     timeout=120)
        await self.pool.all({"cmd": "storm_stop"})
        check: dict[str, Any] = {}
        for r in checks:
            for k, v in r.items():
                if k != "id":
                    check[k] = check.get(k, 0 if not isinstance(v, list) else []) + v
        res.update({k: v for k, v in check.items() if k not in ("recovery_s", "resumed_at")})
        res.update(storm_figures(check, c["ok"], listen_s))
        res.update(published=len(pub.acked), publish_failed=pub.failed, rate=m.storm_rate,
                   listen_s=listen_s, by_type=(await self.pool.stats())["by_type"])
        replayed, resumed = check["replayed"], len(check["resumed_at"])
        cpu = res["storm_cpu_s"]
        res["cpu_us_per_replayed"] = 1e6 * cpu / replayed if replayed else None
        res["cpu_us_per_resume"] = 1e6 * cpu / resumed if resumed else None
        net = cpu - res["baseline_cpu_per_s"] * res["storm_wall_s"]
        res["cpu_us_per_replayed_net"] = 1e6 * net / replayed if replayed else None
        self.say(f"S1 all recovered {res['all_recovered']} in {res['recovery_max_s']} s "
                 f"(p50 {res['recovery_p50_s']}), {res['handshakes_per_s']} handshakes/s, "
                 f"replayed {replayed} ({res['replayed_per_s']}/s), gaps {res['gaps']}, "
                 f"duplicates {res['duplicates']}, out of order {res['out_of_order']}, "
                 f"not recovered {res['not_recovered']}, CPU {cpu:.2f} s")
        return res
