"""The soak's HTTP traffic from the orchestrator: numbered broadcasts, logins from the clients'
source addresses, and the event-loop lag probe (the server's own gauge in /metrics when it has
one, else the latency of GET /health)."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from bench.modes import SOURCES
from bench.server import BENCH_PASSWORD

__all__ = ["LAG_METRIC", "Traffic", "metric_value"]

LAG_METRIC = "events_loop_lag_seconds"


def metric_value(text: str, name: str) -> float | None:
    """Returns the largest sample of metric name in Prometheus text, or None if it has none."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{")]
    return max(values) if values else None


class Traffic:
    """Broadcasts, logins and lag probes against one server until a deadline."""

    def __init__(self, base: str, admin_token: str, emails: list[str]) -> None:
        self.base, self.emails = base, emails
        self.admin = {"Authorization": f"Bearer {admin_token}",
                      "Content-Type": "application/json"}
        self.http = AsyncHTTPClient(force_instance=True, max_clients=64)
        self.alerts: list[int] = []  # numbers of the broadcasts the server acknowledged
        self.failures: collections.Counter[str] = collections.Counter()
        self.logins_ok, self.login_times = 0, []  # seconds per successful login
        self.lag_source = "health"
        self.lag_worst = 0.0  # seconds, since the sampler last took it

    async def fetch(self, path: str, **kwargs: Any) -> Any:
        """Requests path on the server (10 s timeout)."""
        return await self.http.fetch(self.base + path, request_timeout=10.0, **kwargs)

    async def detect_lag_source(self) -> str:
        """Uses the server's lag gauge when /metrics has one, else the /health probe."""
        body = (await self.fetch("/metrics")).body.decode()
        self.lag_source = "metrics" if metric_value(body, LAG_METRIC) is not None else "health"
        return self.lag_source

    async def every(self, rate: float, until: float, one: Any) -> None:
        """Starts one(k) at k/rate seconds from now until `until`; waits for them all."""
        began, tasks, k = time.monotonic(), set(), 0
        while (at := began + k / rate) < until:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            task = asyncio.ensure_future(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        await asyncio.gather(*list(tasks))

    async def broadcasts(self, until: float) -> None:
        """Broadcasts alert k at k seconds from now until `until`, each once the one before was
        answered: the server numbers concurrent requests in the order it commits them, so
        only alerts sent one after the other must arrive in the order of their numbers."""
        began, k = time.monotonic(), 0
        while (at := began + k) < until:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self.broadcast(k)
            k += 1

    def failed(self, what: str, exc: Exception) -> None:
        """Counts a failed request by what it was and why."""
        why = f"HTTP {exc.code}" if isinstance(exc, HTTPClientError) else type(exc).__name__
        self.failures[f"{what}: {why}"] += 1

    async def broadcast(self, seq: int) -> None:
        """POST /ws/broadcast of alert number seq with its send time."""
        body = json.dumps({"message": "soak", "priority": "normal",
                           "metadata": {"seq": seq, "at": time.time()}})
        try:
            await self.fetch("/ws/broadcast", method="POST", headers=self.admin, body=body)
            self.alerts.append(seq)
        except Exception as exc:  # noqa: BLE001 - counted; fails the run
            self.failed("broadcast", exc)

    async def login(self, k: int) -> None:
        """POST /api/v1/auth/login as a random user, from the k-th source address in turn (the
        per-IP login limit applies as to any client)."""
        body = json.dumps({"email": random.choice(self.emails), "password": BENCH_PASSWORD})
        began = time.perf_counter()
        try:
            await self.fetch("/api/v1/auth/login", method="POST", body=body,
                             headers={"Content-Type": "application/json"},
                             network_interface=SOURCES[k % len(SOURCES)])
            self.logins_ok += 1
            self.login_times.append(time.perf_counter() - began)
        except Exception as exc:  # noqa: BLE001 - counted; fails the run
            self.failed("login", exc)

    async def probe(self, _: int) -> None:
        """Reads the lag gauge, or times GET /health; keeps the worst."""
        began = time.perf_counter()
        try:
            if self.lag_source == "metrics":
                body = (await self.fetch("/metrics")).body.decode()
                lag = metric_value(body, LAG_METRIC) or 0.0
            else:
                await self.fetch("/health")
                lag = time.perf_counter() - began
            self.lag_worst = max(self.lag_worst, lag)
        except Exception as exc:  # noqa: BLE001 - counted; fails the run
            self.failed(f"GET /{'metrics' if self.lag_source == 'metrics' else 'health'}", exc)

    def take_lag(self) -> float:
        """Returns the worst lag since the last call, in seconds, and starts anew."""
        worst, self.lag_worst = self.lag_worst, 0.0
        return worst

    async def stats(self) -> dict[str, Any]:
        """Returns the server's /ws/stats (as the admin)."""
        return json.loads((await self.fetch("/ws/stats", headers=self.admin)).body)

    def close(self) -> None:
        """Closes the HTTP client."""
        self.http.close()
