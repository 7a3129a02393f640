"""The measurements the workloads are made of, against one server run (and their ABBA rounds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.server import BENCH_PASSWORD, ServerRun
from bench.stats import proc_runtime_seconds, quantile_points, summarize_latencies

__all__ = ["Phases", "alternate"]

Mark = tuple[float, float, float]
JSON_BODY = {"Content-Type": "application/json"}


async def alternate(tmp: str, order: tuple[str, str], over: str, rounds: int, key: str,
                    one: Callable[[str, int, str], Awaitable[dict[str, Any]]],
                    more: tuple[str, ...] = ()) -> dict[str, Any]:
    """Runs one(setting, round, a new dir under tmp) for both settings in ABBA rounds; ratios
    are over's key to the other's, per round and of the medians (key, p99_ms, more) of both."""
    under, out = order[1] if over == order[0] else order[0], []
    for r in range(rounds):
        row: dict[str, Any] = {"order": list(order if r % 2 == 0 else order[::-1])}
        for setting in row["order"]:
            os.makedirs(path := os.path.join(tmp, f"{setting}-{r}"))
            row[setting] = await one(setting, r, path)
        if "error" not in row[over] and "error" not in row[under]:
            row["ratio"] = row[over][key] / row[under][key]
        out.append(row)
    done = [row for row in out if "ratio" in row]
    med = {f"{k}_{s}": statistics.median(row[s][k] for row in done) if done else None
           for k in (key, "p99_ms", *more) for s in order}
    a, b = med[f"{key}_{over}"], med[f"{key}_{under}"]
    return {"rounds": out, **med, "ratio": a / b if a and b else None}


class Phases(ServerRun):
    """A server run that can measure broadcast runs, targeted sends and login storms."""

    def mark(self) -> Mark:
        """Returns the server's CPU, the load generators' CPU and the time at a phase's start."""
        return self.cpu(), self.pool.cpu_seconds() + time.process_time(), time.time()

    async def figures(self, mark: Mark, st: dict[str, Any], sent_done: float,
                      tag: str) -> dict[str, Any]:
        """Returns a phase's throughput, CPU per delivery, core use and latency."""
        cpu, ccpu = self.cpu() - mark[0], self.pool.cpu_seconds() + time.process_time() - mark[1]
        wall = max(st["last_recv"], sent_done) - mark[2]
        values = await self.pool.latencies(self.tmp, f"{self.name}-{tag}")
        delivered, lat = st["received"], summarize_latencies(values)
        return {"delivered": delivered, "wall_s": wall,
                "msgs_per_s": delivered / wall if wall > 0 else None, "server_cpu_s": cpu,
                "cpu_us_per_msg": 1e6 * cpu / delivered if delivered else None,
                "server_core_util": cpu / wall if wall > 0 else None,
                "client_core_util": ccpu / wall if wall > 0 else None,
                "bytes_per_event": st["wire_bytes"] / max(1, delivered), "latency": lat,
                "p99_ms": lat["p99_ms"], "latency_quantiles": quantile_points(values, 101)}

    async def broadcast_phase(self, tag: str, count: int, max_seconds: float, pad: str = "",
                              during: Callable[[asyncio.Event], Awaitable[Any]] | None = None,
                              window: int = 1) -> dict[str, Any]:
        """Sends up to count alerts, window at a time, while `during` runs; measures the receipt."""
        await self.pool.all({"cmd": "reset"})
        recipients = (await self.pool.stats())["open_recording"]
        side_done = asyncio.Event()
        side = asyncio.ensure_future(during(side_done)) if during is not None else None
        if side is not None:
            await asyncio.sleep(0.5)  # let the side load get going before the first alert
        mark = self.mark()
        stop_at = time.monotonic() + min(max_seconds, max(5.0, self.time_left() - 30))
        sent, inflight = 0, set()
        try:
            for seq in range(count):
                if time.monotonic() > stop_at:
                    break
                if len(inflight) >= window:
                    done, inflight = await asyncio.wait(inflight,
                                                        return_when=asyncio.FIRST_COMPLETED)
                    for d in done:
                        d.result()  # a failed send fails the phase
                inflight.add(asyncio.ensure_future(self.trigger.send(seq, pad)))
                sent += 1
            await asyncio.gather(*inflight)
            sent_done = time.time()
            st = await self.pool.wait_received(sent * recipients)
        finally:
            side_done.set()
            side_result = await side if side is not None else None
        out = {"broadcasts": sent, "broadcasts_planned": count, "window": window,
               "recipients_per_broadcast": recipients, "expected": sent * recipients,
               "send_wall_s": sent_done - mark[2], **await self.figures(mark, st, sent_done, tag)}
        if side_result is not None:
            out["side"] = side_result
        return out

    async def peak_rss(self, done: asyncio.Event) -> int:
        """Returns the server's largest RSS in KiB, read every 250 ms until done is set."""
        peak = self.rss()
        while not done.is_set():
            with contextlib.suppress(OSError):
                peak = max(peak, self.rss())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.25)
        return peak

    async def connect(self, count: int, offset: int = 0, tokens: list[str] | None = None,
                         **options: Any) -> dict[str, Any]:
        """Opens count more connections; adds the server's CPU and rate per handshake."""
        cpu0, timeout = self.cpu(), max(30.0, min(180.0, self.time_left() - 60))
        gc0 = self.full_gcs()
        c = await self.pool.connect(self.port, tokens or self.tokens(), count, offset, timeout,
                                    **options)
        ok = c["ok"]
        # gc_us: the share of cpu_us the server spent in full garbage collections meanwhile.
        return {**c, "cpu_us": 1e6 * (self.cpu() - cpu0) / ok if ok else None,
                **self.gc_since(gc0, ok), "per_s": ok / c["wall_s"] if c["wall_s"] > 0 else None}

    async def dropped(self) -> int:
        """Slow consumers the server closed: its own counter (product) or closes seen (peers)."""
        if self.name != "product":
            return (await self.pool.stats())["lost"]
        resp = await self.trigger.http.fetch(f"http://127.0.0.1:{self.port}/ws/stats",
                                             headers=self.trigger.headers)  # the admin's
        return int(json.loads(resp.body)["slow_consumers_dropped"])

    async def cpu_rounds(self, unit: str, rounds: int, per_round: int,
                         one: Callable[[int, int], Awaitable[None]]) -> dict[str, Any]:
        """Runs one(round, i) 5 times to warm up, then in rounds; the CPU and wall time per call."""
        for i in range(5):
            await one(-1, i)
        await asyncio.sleep(0.3)
        await self.pool.all({"cmd": "reset"})
        proc_us, loop_us, wall_ms = [], [], []
        for r in range(rounds):
            cpu0, loop0 = proc_runtime_seconds(self.server.pid), self.loop_cpu()
            began = time.perf_counter()
            for i in range(per_round):
                await one(r, i)
            wall_ms.append(1000 * (time.perf_counter() - began) / per_round)
            proc_us.append(1e6 * (proc_runtime_seconds(self.server.pid) - cpu0) / per_round)
            loop_us.append(1e6 * (self.loop_cpu() - loop0) / per_round)
        return {"rounds": rounds, f"cpu_us_per_{unit}": statistics.median(proc_us),
                f"loop_cpu_us_per_{unit}": statistics.median(loop_us),
                f"cpu_us_per_{unit}_rounds": proc_us, f"loop_cpu_us_per_{unit}_rounds": loop_us,
                f"wall_ms_per_{unit}": statistics.median(wall_ms)}

    def compare(self, name: str, unit: str, w: dict[str, Any]) -> None:
        """Adds the many/few ratios of w's CPU per unit (IOLoop thread, process) and says them."""
        loop, proc = f"loop_cpu_us_per_{unit}", f"cpu_us_per_{unit}"
        few, many = w["few"], w["many"]
        w.update(ratio=many[loop] / few[loop], ratio_process=many[proc] / few[proc])
        self.say(f"{name} per {unit}: loop {few[loop]:.0f} -> {many[loop]:.0f} us (ratio "
                 f"{w['ratio']:.2f}); process {w['ratio_process']:.2f}x")

    async def targeted(self, label: str) -> dict[str, Any]:
        """W3: renames the target user (3 tabs open) in 3 rounds; the server's CPU per send."""
        headers = {"Authorization": f"Bearer {self.seeded.target_token}", **JSON_BODY}
        url = f"http://127.0.0.1:{self.port}/api/v1/users/me"

        async def patch(r: int, i: int) -> None:
            """Renames the target user once (with the trigger's HTTP client)."""
            await self.trigger.http.fetch(url, method="PATCH", headers=headers,
                                          body=json.dumps({"name": f"Target {label} {r} {i}"}))

        per_round = max(1, self.mode.w3_sends // 3)
        out = await self.cpu_rounds("send", 3, per_round, patch)
        await asyncio.sleep(0.5)
        return {"sends": 3 * per_round, **out,
                "events_received": (await self.pool.stats())["by_type"],
                "events_expected_per_type": 3 * 3 * per_round}

    async def posts(self, path: str, headers: dict[str, str], body: Callable[[], str],
                    loops: int, per_loop: int, done: asyncio.Event | None = None,
                    ) -> tuple[list[float], int]:
        """POSTs body() to path from concurrent loops (the trigger's HTTP client: 64 at a time),
        per_loop each or until done is set; returns the answered requests' seconds, failures."""
        from tornado.httpclient import HTTPClientError

        url, times, failed = f"http://127.0.0.1:{self.port}{path}", [], 0

        async def loop() -> None:
            nonlocal failed
            for _ in range(per_loop):
                if done is not None and (done.is_set() or self.time_left() < 20):
                    return
                began = time.perf_counter()
                try:
                    await self.trigger.http.fetch(url, method="POST", headers=headers,
                                                  body=body(), request_timeout=30)
                    times.append(time.perf_counter() - began)
                except (HTTPClientError, OSError, TimeoutError):
                    failed += 1

        await asyncio.gather(*(loop() for _ in range(loops)))
        return times, failed

    async def notify(self, requests: int, concurrency: int = 8) -> dict[str, Any]:
        """API1: server notifications to the target user's 3 tabs; rate, latency, CPU each."""
        body = json.dumps({"type": "app.bench", "data": {"n": 1}, "user_id": self.seeded.target_id})
        await self.pool.all({"cmd": "reset"})
        cpu0, began = self.cpu(), time.perf_counter()
        times, failed = await self.posts(
            "/api/v1/server/notify", {"X-API-Key": self.seeded.api_key, **JSON_BODY},
            lambda: body, concurrency, requests // concurrency)
        wall, cpu = time.perf_counter() - began, self.cpu() - cpu0
        await asyncio.sleep(0.5)
        lat = summarize_latencies(times)
        return {"requests": len(times), "failed": failed, "concurrency": concurrency,
                "requests_per_s": len(times) / wall, "cpu_us_per_request": 1e6 * cpu / len(times),
                "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
                "delivered": (await self.pool.stats())["by_type"].get("app.bench", 0),
                "expected": 3 * len(times)}

    async def login_storm(self, done: asyncio.Event) -> dict[str, Any]:
        """Concurrent POST /api/v1/auth/login loops until done is set (bounded in count)."""
        emails, rng = self.seeded.user_emails, random.Random(5)
        times, failed = await self.posts(
            "/api/v1/auth/login", JSON_BODY, lambda: json.dumps(
                {"email": rng.choice(emails), "password": BENCH_PASSWORD}),
            self.mode.w5_logins, 500, done)
        s = summarize_latencies(times)
        return {"logins_ok": len(times), "logins_failed": failed,
                "concurrency": self.mode.w5_logins, "login_p50_ms": s["p50_ms"],
                "login_p99_ms": s["p99_ms"]}
