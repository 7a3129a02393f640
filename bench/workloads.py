"""The workloads W1-W5 against one server, in order, each recorded into its results."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from bench.burst import BURST_SERVERS, burst_phase
from bench.modes import Mode
from bench.phases import Phases
from bench.stats import proc_runtime_seconds

__all__ = ["Bench"]


class Bench(Phases):
    """Runs every workload against one server and returns its results."""

    async def run(self) -> dict[str, Any]:
        """Starts the server and runs W3 (few), W1, W2, W3 (many), W5 and W4 against it."""
        m = self.mode
        await self.start()
        rss_base = self.rss()
        self.result["rss_base_kib"] = rss_base
        bystander_tokens = (self.seeded.user_tokens if self.seeded else [""])
        tokens = [t for t in bystander_tokens for _ in range(m.tabs)]
        connected = 0
        if self.name == "product":
            self.say(f"W3 with {m.w3_few} bystanders: {m.w3_sends} sends to one user's 3 tabs")
            await self.pool.workers[0].call(
                {"cmd": "connect", "host": "127.0.0.1", "port": self.port, "path": "/ws",
                 "tokens": [self.seeded.target_token] * 3, "count": 3,
                 "sources": self.sources, "concurrency": 3, "timeout": 30, "tag": "target"})
            c = await self.pool.connect("127.0.0.1", self.port, tokens, m.w3_few, self.sources)
            connected += c["ok"]
            await self._settle(1.0)
            few = await self.targeted("few")
            self.result["workloads"]["W3"] = {"few": few, "bystanders_few": connected}
        self.say(f"W1 connecting {m.connections - connected} clients")
        rest = m.connections - connected
        cpu0 = self.cpu()
        c = await self.pool.connect("127.0.0.1", self.port, tokens, rest, self.sources,
                                    offset=connected,
                                    timeout=max(30.0, min(180.0, self.time_left() - 60)))
        connected += c["ok"]
        connect_cpu = self.cpu() - cpu0
        await self._settle(2.0)
        idle0, idle_t0 = proc_runtime_seconds(self.server.pid), time.perf_counter()
        await self._settle(3.0)
        idle_cpu = ((proc_runtime_seconds(self.server.pid) - idle0)
                    / (time.perf_counter() - idle_t0))
        rss_idle = self.rss()
        st = await self.pool.stats()
        open_now = st["open"] - (3 if self.name == "product" else 0)
        w1 = {
            "connections": open_now,
            "attempted": rest,
            "failed": c["failed"],
            "errors": c["errors"],
            "connect_wall_s": c["wall_s"],
            "handshakes_per_s": c["ok"] / c["wall_s"] if c["wall_s"] > 0 else None,
            "handshake_ms_mean": c["handshake_ms_mean"],
            "cpu_us_per_handshake": 1e6 * connect_cpu / c["ok"] if c["ok"] else None,
            "rss_base_kib": rss_base,
            "rss_idle_kib": rss_idle,
            "rss_kib_per_conn": (rss_idle - rss_base) / max(1, st["open"]),
            "idle_cpu_pct": 100 * idle_cpu,
            "auth": "JWT verify + user/session lookup" if self.name == "product" else "none",
        }
        self.result["workloads"]["W1"] = w1
        self.say(f"W1 {open_now} open, {w1['handshakes_per_s']:.0f} handshakes/s, "
                 f"{w1['cpu_us_per_handshake'] or 0:.0f} us server CPU each, "
                 f"{w1['rss_kib_per_conn']:.1f} KiB/conn, idle CPU {w1['idle_cpu_pct']:.1f}%, "
                 f"failed {c['failed']} {c['errors']}")
        if c["failed"] > 0.05 * rest:
            self.result["notes"].append(f"W1: {c['failed']} of {rest} connections failed")

        only_w3 = bool(os.environ.get("BENCH_ONLY_W3"))  # development: W1 + W3 only
        if not only_w3:
            await self._w2(m, st)
            if self.name in BURST_SERVERS:
                await self._burst(m)
        if self.name == "product":
            await self._w3(m, st, few)
            if not only_w3:
                await self._w5(m)
        if not only_w3:
            await self._w4(m)
        return self.result

    async def _w2(self, m: Mode, st: dict[str, Any]) -> None:
        """Runs W2: broadcasts with one alert in flight, then with four."""
        self.say(f"W2 {m.w2_broadcasts} broadcasts to {st['open']}")
        w2 = await self.broadcast_phase("w2", m.w2_broadcasts, 60.0)
        self.say(self._line(w2) + " (one alert in flight)")
        sat = await self.broadcast_phase("w2sat", m.w2_broadcasts, 60.0, window=4)
        self.say(self._line(sat) + " (4 alerts in flight)")
        w2["saturated"] = {k: v for k, v in sat.items() if k != "latency_quantiles"}
        self.result["workloads"]["W2"] = w2
        if self.profile and self.name == "product":
            await self.profile_w2()

    async def _burst(self, m: Mode) -> None:
        """Runs the burst workload: K alerts to every connection in one IOLoop iteration."""
        self.say(f"burst: {m.bursts} bursts of {m.burst_events} alerts to every connection")
        b = await burst_phase(self, m.bursts, m.burst_events)
        self.result["workloads"]["burst"] = b
        self.say(f"burst: {b['delivered']} of {b['expected']} delivered, "
                 f"{b['cpu_us_per_msg'] or 0:.2f} us CPU per delivered event")

    async def _w3(self, m: Mode, st: dict[str, Any], few: dict[str, Any]) -> None:
        """Runs W3 with every client connected and compares it with the few-bystander run."""
        self.say(f"W3 with {st['open'] - 3} bystanders: {m.w3_sends} sends")
        many = await self.targeted("many")
        for k in range(int(os.environ.get("BENCH_W3_REPEAT", "0"))):  # development aid
            again = await self.targeted(f"again{k}")
            self.say(f"W3 repeat {k}: {again['cpu_us_per_send']:.0f} us/send")
        w3 = self.result["workloads"]["W3"]
        w3["many"] = many
        w3["bystanders_many"] = st["open"] - 3
        w3["ratio"] = many["loop_cpu_us_per_send"] / few["loop_cpu_us_per_send"]
        w3["ratio_process"] = many["cpu_us_per_send"] / few["cpu_us_per_send"]
        self.say(f"W3 per send: loop {few['loop_cpu_us_per_send']:.0f} us -> "
                 f"{many['loop_cpu_us_per_send']:.0f} us (ratio {w3['ratio']:.2f}); process "
                 f"{few['cpu_us_per_send']:.0f} us -> {many['cpu_us_per_send']:.0f} us "
                 f"(ratio {w3['ratio_process']:.2f})")

    async def _w5(self, m: Mode) -> None:
        """Runs W5: broadcasts during a login storm."""
        self.say(f"W5 login storm ({m.w5_logins} concurrent) during {m.w5_broadcasts} broadcasts")
        w5 = await self.broadcast_phase("w5", m.w5_broadcasts, 60.0, during=self.login_storm)
        self.result["workloads"]["W5"] = w5
        self.say(self._line(w5) + f"; logins {w5['side']}")

    async def _w4(self, m: Mode) -> None:
        """Runs W4: broadcasts while every 50th client has stopped reading."""
        if self.time_left() < min(40.0, m.w4_max_seconds + 10):
            self.result["notes"].append("W4 skipped: out of time budget")
            self.say("W4 skipped: out of time budget")
            return
        every = 50
        paused = sum(r["paused"] for r in await self.pool.all({"cmd": "pause", "every": every}))
        dropped0 = await self._dropped()
        self.say(f"W4 {paused} clients stopped reading; {m.w4_broadcasts} broadcasts "
                 f"with {m.w4_pad} B padding (max {m.w4_max_seconds:.0f} s)")
        samples: list = []
        rss_w4_start = self.rss()
        w4 = await self.broadcast_phase("w4", m.w4_broadcasts, m.w4_max_seconds,
                                        pad="x" * m.w4_pad, rss_samples=samples)
        rss_w4_end = self.rss()
        await self.pool.all({"cmd": "resume"})
        await self._settle(2.0)
        st4 = await self.pool.stats()
        w4.update({
            "paused": paused,
            "rss_start_kib": rss_w4_start,
            "rss_peak_kib": max([s[1] for s in samples] + [rss_w4_end]),
            "rss_end_kib": rss_w4_end,
            "rss_samples": samples[::max(1, len(samples) // 200)],
            "dropped_by_server": (await self._dropped()) - dropped0,
            "close_codes_seen": st4["close_codes"],
        })
        w4["rss_growth_kib"] = w4["rss_peak_kib"] - rss_w4_start
        self.result["workloads"]["W4"] = w4
        self.say(self._line(w4) + f"; RSS +{w4['rss_growth_kib'] / 1024:.1f} MiB, "
                 f"dropped {w4['dropped_by_server']}, closes seen {st4['close_codes']}")

    def _line(self, r: dict[str, Any]) -> str:
        """Returns a one-line progress summary of a broadcast phase."""
        lat = r["latency"]
        return (f"{r['broadcasts']} x {r['recipients_per_broadcast']}: "
                f"{r['msgs_per_s']:.0f} msgs/s, {r['cpu_us_per_msg']:.2f} us/msg, "
                f"p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms "
                f"max {lat['max_ms']:.1f} ms, "
                f"server core {100 * r['server_core_util']:.0f}%, "
                f"client core {100 * r['client_core_util']:.0f}%")

    async def profile_w2(self) -> None:
        """py-spy record of the product during an extra broadcast run (not measured)."""
        spy = self._spy("w2", 12)
        if spy is None:
            return
        await asyncio.sleep(1.0)
        await self.broadcast_phase("profile", self.mode.w2_broadcasts, 10.0)
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait, 30)
