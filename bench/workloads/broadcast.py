"""W1-W5 and the burst against one server. A burst is K alerts to every connection in one
IOLoop iteration: the product's from its outbox in one drain of the relay, a peer's from one
control message."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from bench.phases import Phases

__all__ = ["Bench", "BURST_SERVERS"]

BURST_SERVERS = ("product", "websockets", "floor")


def _line(r: dict[str, Any]) -> str:
    """Returns a one-line progress summary of a broadcast phase."""
    lat = r["latency"]
    return (f"{r['broadcasts']} x {r['recipients_per_broadcast']}: {r['msgs_per_s']:.0f} msgs/s, "
            f"{r['cpu_us_per_msg']:.2f} us/msg, p50 {lat['p50_ms']:.1f} ms p99 "
            f"{lat['p99_ms']:.1f} ms max {lat['max_ms']:.1f} ms, server core "
            f"{100 * r['server_core_util']:.0f}%, client core {100 * r['client_core_util']:.0f}%")


class Bench(Phases):
    """Runs every workload against one server and returns its results."""

    async def run(self) -> dict[str, Any]:
        """Starts the server and runs W3 (few), W1, W2, the burst, W3 (many), W5 and W4."""
        m, product, wl = self.mode, self.name == "product", self.result["workloads"]
        await self.start()
        rss_base = self.rss()
        connected = 0
        if product:
            self.say(f"W3 with {m.w3_few} bystanders: {m.w3_sends} sends to one user's 3 tabs")
            await self.connect(3, tokens=[self.seeded.target_token], small_rcvbuf_every=0)
            connected = (await self.connect(m.w3_few))["ok"]
            await asyncio.sleep(1.0)
            wl["W3"] = {"few": await self.targeted("few"), "bystanders_few": connected}
        rest = m.connections - connected
        self.say(f"W1 connecting {rest} clients")
        c = await self.connect(rest, connected)
        await asyncio.sleep(5.0)  # the server settles before its idle RSS is read
        rss_idle, st = self.rss(), await self.pool.stats()
        w1 = wl["W1"] = {"connections": st["open"] - (3 if product else 0), "attempted": rest,
            "failed": c["failed"], "errors": c["errors"], "connect_wall_s": c["wall_s"],
            "handshakes_per_s": c["per_s"], "handshake_ms_mean": c["handshake_ms_mean"],
            "cpu_us_per_handshake": c["cpu_us"], "full_gcs": c["full_gcs"],
            "gc_us_per_handshake": c["gc_us"], "rss_base_kib": rss_base, "rss_idle_kib": rss_idle,
            "rss_kib_per_conn": (rss_idle - rss_base) / max(1, st["open"]),
            "auth": "JWT verify + user/session lookup" if product else "none"}
        self.say(f"W1 {w1['connections']} open, {w1['handshakes_per_s']:.0f} handshakes/s, "
                 f"{w1['cpu_us_per_handshake'] or 0:.0f} us server CPU each, "
                 f"{w1['rss_kib_per_conn']:.1f} KiB/conn, failed {c['failed']} {c['errors']}")
        if c["failed"] > 0.05 * rest:
            self.result["notes"].append(f"W1: {c['failed']} of {rest} connections failed")
        await self.w2(st["open"])
        if self.name in BURST_SERVERS:
            b = wl["burst"] = await self.burst(m.bursts, m.burst_events)
            self.say(f"burst: {b['delivered']} of {b['expected']} delivered, "
                     f"{b['cpu_us_per_msg'] or 0:.2f} us CPU per delivered event")
        if product:
            self.say(f"W3 with {st['open'] - 3} bystanders: {m.w3_sends} sends")
            wl["W3"].update(many=await self.targeted("many"), bystanders_many=st["open"] - 3)
            self.compare("W3", "send", wl["W3"])
            api = wl["API1"] = await self.notify(m.w3_sends * 4)
            self.say(f"API1 server API notify with {st['open']} open: "
                     f"{api['requests_per_s']:.0f} req/s, p99 {api['p99_ms']:.1f} ms, "
                     f"{api['cpu_us_per_request']:.0f} us CPU each, {api['delivered']} of "
                     f"{api['expected']} delivered")
            self.say(f"W5 login storm ({m.w5_logins} concurrent) during {m.w5_broadcasts} "
                     "broadcasts")
            w5 = wl["W5"] = await self.broadcast_phase("w5", m.w5_broadcasts, 60.0,
                                                       during=self.login_storm)
            self.say(_line(w5) + f"; logins {w5['side']}")
        await self.w4()
        return self.result

    async def w2(self, connections: int) -> None:
        """Runs W2: broadcasts with one alert in flight, then with four."""
        self.say(f"W2 {self.mode.w2_broadcasts} broadcasts to {connections}")
        w2 = await self.broadcast_phase("w2", self.mode.w2_broadcasts, 60.0)
        self.say(_line(w2) + " (one alert in flight)")
        sat = await self.broadcast_phase("w2sat", self.mode.w2_broadcasts, 60.0, window=4)
        self.say(_line(sat) + " (4 alerts in flight)")
        w2["saturated"] = {k: v for k, v in sat.items() if k != "latency_quantiles"}
        self.result["workloads"]["W2"] = w2
        if self.profile and self.name == "product" and (spy := self.spy("w2", 12)):
            await asyncio.sleep(1.0)
            await self.broadcast_phase("profile", self.mode.w2_broadcasts, 10.0)  # not recorded
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait, 30)

    async def burst(self, bursts: int, per_burst: int) -> dict[str, Any]:
        """Sends bursts of alerts, each once the last is in; CPU per delivery."""
        self.say(f"burst: {bursts} bursts of {per_burst} alerts to every connection")
        await self.pool.all({"cmd": "reset"})
        recipients = (await self.pool.stats())["open_recording"]
        mark, done = self.mark(), 0
        for b in range(bursts):
            if self.time_left() < 20:
                break
            await self.trigger.burst(10_000_000 + b * per_burst, per_burst)
            done += 1
            await self.pool.wait_received(done * per_burst * recipients, limit=30, stall=30)
        st = await self.pool.stats()  # wall time: from the first burst to the last receipt
        return {"bursts": done, "events_per_burst": per_burst, "recipients_per_event": recipients,
                "expected": done * per_burst * recipients,
                **await self.figures(mark, st, mark[2], "burst")}

    async def w4(self) -> None:
        """Runs W4: broadcasts while the small-buffer clients stop reading."""
        m = self.mode
        if self.time_left() < min(40.0, m.w4_max_seconds + 10):
            self.result["notes"].append("W4 skipped: out of time budget")
            self.say("W4 skipped: out of time budget")
            return
        paused = sum(r["paused"] for r in await self.pool.all({"cmd": "pause"}))
        dropped0 = await self.dropped()
        self.say(f"W4 {paused} clients stopped reading; {m.w4_broadcasts} broadcasts with "
                 f"{m.w4_pad} B padding (max {m.w4_max_seconds:.0f} s)")
        rss_start = self.rss()
        w4 = await self.broadcast_phase("w4", m.w4_broadcasts, m.w4_max_seconds,
                                        pad="x" * m.w4_pad, during=self.peak_rss)
        rss_end = self.rss()
        await self.pool.all({"cmd": "resume"})
        await asyncio.sleep(2.0)
        closes = (await self.pool.stats())["close_codes"]
        peak = max(w4.pop("side"), rss_end)
        w4.update(paused=paused, rss_start_kib=rss_start, rss_peak_kib=peak, rss_end_kib=rss_end,
                  dropped_by_server=(await self.dropped()) - dropped0, close_codes_seen=closes,
                  rss_growth_kib=peak - rss_start)
        self.result["workloads"]["W4"] = w4
        self.say(_line(w4) + f"; RSS +{w4['rss_growth_kib'] / 1024:.1f} MiB, dropped "
                 f"{w4['dropped_by_server']}, closes seen {closes}")
