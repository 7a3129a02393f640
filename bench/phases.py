"""The measurements workloads are made of: broadcast runs, targeted sends and a login storm."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import statistics
import time
from typing import Any

from bench.server import ServerRun
from bench.stats import proc_runtime_seconds, quantile_points, summarize_latencies

__all__ = ["Phases"]


class Phases(ServerRun):
    """A server run that can measure broadcast runs, targeted sends and login storms."""

    async def broadcast_phase(self, tag: str, count: int, max_seconds: float, pad: str = "",
                              during=None, rss_samples: list | None = None,
                              window: int = 1) -> dict[str, Any]:
        """Sends up to count alerts with at most window unacknowledged (1: each waits for the
        server's ack of the previous one), waits until the clients have them all, and measures
        throughput, CPU and latency."""
        pool, trigger = self.pool, self.trigger
        await pool.all({"cmd": "reset"})
        before = await pool.stats()
        recipients_expected = before["open_recording"]
        side_done = asyncio.Event()
        side = asyncio.ensure_future(during(side_done)) if during is not None else None
        if side is not None:
            await asyncio.sleep(0.5)  # let the side load get going before the first alert
        cpu0, ccpu0 = self.cpu(), pool.cpu_seconds() + time.process_time()
        began = time.time()
        stop_at = time.monotonic() + min(max_seconds, max(5.0, self.time_left() - 30))
        sampler = None
        if rss_samples is not None:
            sampler = asyncio.ensure_future(self._sample_rss(rss_samples, began))
        sent = 0
        acked = 0
        ack_ms = []
        inflight: set[asyncio.Future] = set()

        async def one(seq: int) -> int:
            """Sends alert seq and records how long its acknowledgement took."""
            t = time.perf_counter()
            n = await trigger.send(seq, pad)
            ack_ms.append(1000 * (time.perf_counter() - t))
            return n

        try:
            for seq in range(count):
                if time.monotonic() > stop_at:
                    break
                while len(inflight) >= window:
                    done, inflight = await asyncio.wait(inflight,
                                                        return_when=asyncio.FIRST_COMPLETED)
                    acked += sum(d.result() for d in done)
                inflight.add(asyncio.ensure_future(one(seq)))
                sent += 1
            if inflight:
                acked += sum(await asyncio.gather(*inflight))
            sent_done = time.time()
            # Drain: wait until every recording client has every alert (bounded).
            expected = sent * recipients_expected
            last, still = -1, 0
            for _ in range(600):
                st = await pool.stats()
                if st["received"] >= expected:
                    break
                if st["received"] == last:
                    still += 1
                    if still >= 30:  # 3 s without progress
                        break
                else:
                    still = 0
                last = st["received"]
                await asyncio.sleep(0.1)
        finally:
            side_done.set()
            if side is not None:
                side_result = await side
            else:
                side_result = None
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        st = await pool.stats()
        cpu1, ccpu1 = self.cpu(), pool.cpu_seconds() + time.process_time()
        end = max(st["last_recv"], sent_done)
        wall = end - began
        lat = await pool.latencies(self.tmp, f"{self.name}-{tag}")
        delivered = st["received"]
        summary = summarize_latencies(lat)
        out = {
            "broadcasts": sent,
            "broadcasts_planned": count,
            "window": window,
            "recipients_per_broadcast": recipients_expected,
            "delivered": delivered,
            "expected": sent * recipients_expected,
            "wall_s": wall,
            "send_wall_s": sent_done - began,
            "msgs_per_s": delivered / wall if wall > 0 else None,
            "server_cpu_s": cpu1 - cpu0,
            "cpu_us_per_msg": (1e6 * (cpu1 - cpu0) / delivered) if delivered else None,
            "server_core_util": (cpu1 - cpu0) / wall if wall > 0 else None,
            "client_core_util": (ccpu1 - ccpu0) / wall if wall > 0 else None,
            "ack_ms_mean": sum(ack_ms) / len(ack_ms) if ack_ms else None,
            "latency": summary,
            "latency_quantiles": quantile_points(lat, 101),
        }
        if side_result is not None:
            out["side"] = side_result
        return out

    async def _sample_rss(self, samples: list, began: float) -> None:
        """Appends [seconds since began, server RSS KiB] every 250 ms until cancelled."""
        for _ in range(100000):
            with contextlib.suppress(OSError):
                samples.append([round(time.time() - began, 3), self.rss()])
            await asyncio.sleep(0.25)

    async def _dropped(self) -> int | None:
        """Slow consumers the server closed: its own counter (product) or closes seen (peers)."""
        if self.name == "product":
            from tornado.httpclient import AsyncHTTPClient

            http = AsyncHTTPClient(force_instance=True)
            try:
                resp = await http.fetch(f"http://127.0.0.1:{self.port}/ws/stats",
                                        headers={"Authorization":
                                                 f"Bearer {self.seeded.admin_token}"})
                return int(json.loads(resp.body)["slow_consumers_dropped"])
            finally:
                http.close()
        st = await self.pool.stats()
        return st["lost"]

    async def targeted(self, label: str) -> dict[str, Any]:
        """PATCH /api/v1/users/me as the target user in rounds; server CPU per send.

        Reports the whole process (loop + database threads, whose SQLite commits vary with the
        disk) and the IOLoop thread alone; each is the median over the rounds.
        """
        from tornado.httpclient import AsyncHTTPClient

        m = self.mode
        rounds = 3
        per_round = max(1, m.w3_sends // rounds)
        http = AsyncHTTPClient(force_instance=True)
        headers = {"Authorization": f"Bearer {self.seeded.target_token}",
                   "Content-Type": "application/json"}
        url = f"http://127.0.0.1:{self.port}/api/v1/users/me"
        proc_us, loop_us, wall_ms = [], [], []
        sends = 0
        try:
            for i in range(5):  # warm-up
                await http.fetch(url, method="PATCH", headers=headers,
                                 body=json.dumps({"name": f"Warm {label} {i}"}))
            await asyncio.sleep(0.3)
            await self.pool.all({"cmd": "reset"})
            spy = None
            if self.profile:
                spy = self._spy(f"w3-{label}", 30)
                await asyncio.sleep(1.0)
            for r in range(rounds):
                cpu0, loop0 = proc_runtime_seconds(self.server.pid), self.loop_cpu()
                began = time.perf_counter()
                n = 0
                for i in range(per_round):
                    if time.perf_counter() - began > 30:
                        break
                    await http.fetch(url, method="PATCH", headers=headers,
                                     body=json.dumps({"name": f"Target {label} {r} {i}"}))
                    n += 1
                wall = time.perf_counter() - began
                cpu1, loop1 = proc_runtime_seconds(self.server.pid), self.loop_cpu()
                sends += n
                proc_us.append(1e6 * (cpu1 - cpu0) / n)
                loop_us.append(1e6 * (loop1 - loop0) / n)
                wall_ms.append(1000 * wall / n)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 30)
        finally:
            http.close()
        await asyncio.sleep(0.5)
        st = await self.pool.stats()
        return {
            "sends": sends,
            "rounds": rounds,
            "cpu_us_per_send": statistics.median(proc_us),
            "loop_cpu_us_per_send": statistics.median(loop_us),
            "cpu_us_per_send_rounds": proc_us,
            "loop_cpu_us_per_send_rounds": loop_us,
            "wall_ms_per_send": statistics.median(wall_ms),
            "events_received": st["by_type"],
            "events_expected_per_type": 3 * sends,
        }

    async def login_storm(self, done: asyncio.Event) -> dict[str, Any]:
        """Concurrent POST /api/v1/auth/login loops until done is set (bounded in count)."""
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        from bench.seed import BENCH_PASSWORD

        m = self.mode
        emails = self.seeded.user_emails
        http = AsyncHTTPClient(force_instance=True, max_clients=m.w5_logins + 4)
        url = f"http://127.0.0.1:{self.port}/api/v1/auth/login"
        ok, failed, times = 0, 0, []
        rng = random.Random(5)

        async def loop_one() -> None:
            """Logs in as random users until done is set, counting the outcomes."""
            nonlocal ok, failed
            for _ in range(500):
                if done.is_set() or self.time_left() < 20:
                    return
                body = json.dumps({"email": rng.choice(emails), "password": BENCH_PASSWORD})
                t = time.perf_counter()
                try:
                    await http.fetch(url, method="POST", body=body,
                                     headers={"Content-Type": "application/json"},
                                     request_timeout=30)
                    ok += 1
                    times.append(time.perf_counter() - t)
                except (HTTPClientError, OSError, TimeoutError):
                    failed += 1

        await asyncio.gather(*(loop_one() for _ in range(m.w5_logins)))
        http.close()
        s = summarize_latencies(times)
        return {"logins_ok": ok, "logins_failed": failed, "concurrency": m.w5_logins,
                "login_p50_ms": s["p50_ms"], "login_p99_ms": s["p99_ms"]}
