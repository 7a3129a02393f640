"""One soak run against a started server: the load-generator pool, the loads, the samples and
one row per interval, then the checks once the load stops."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import statistics
import time
from array import array
from typing import Any

from bench.modes import SERVER_CORE, SOURCES, Clock
from bench.procs import Pool, Proc
from bench.server import Seeded
from bench.stats import CLK_TCK, add_counts, percentile, proc_cpu_seconds, proc_rss_kib
from proof import soakreport
from proof.soakplan import Plan, SoakProc
from proof.soaktraffic import Traffic

__all__ = ["SoakRun", "core_busy_seconds"]

HEALTHY = ("feed", "room", "churn")  # every kind of client but the slow consumers


def core_busy_seconds(core: int = SERVER_CORE) -> float:
    """Returns the seconds a core has spent running processes (user, nice, system and time a
    hypervisor stole), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"cpu{core} "):
                user, nice, system, _, _, _, _, steal = (int(x) for x in line.split()[1:9])
                return (user + nice + system + steal) / CLK_TCK
    return 0.0


class SoakRun:
    """The load-generator pool, the loads and the measurements of one run."""

    def __init__(self, plan: Plan, tmp: str, clock: Clock, server: Proc, port: int,
                 seeded: Seeded, rooms: list[str]) -> None:
        self.plan, self.tmp, self.clock, self.server, self.port = plan, tmp, clock, server, port
        self.rooms = rooms
        self.tokens = [t for t in seeded.user_tokens for _ in range(10)]  # 10 tabs a user
        self.traffic = Traffic(f"http://127.0.0.1:{port}", seeded.admin_token,
                               seeded.user_emails)
        self.pool = Pool([])
        self.result: dict[str, Any] = {"rows": [], "samples": []}
        self.ticks: dict[str, Any] = {}  # the workers' last counters, summed
        self.slow = {"opened": 0, "failed": 0}

    async def start_pool(self, max_seconds: float) -> None:
        """Starts the load generators."""
        for i in range(self.plan.workers):
            worker = SoakProc(i, os.path.join(self.tmp, f"soakload-{i}.log"), max_seconds)
            self.pool.workers.append(worker)
            await worker.start()

    async def stop(self) -> None:
        """Stops the load generators and the HTTP client."""
        await self.pool.stop()
        self.traffic.close()

    def fds(self) -> int:
        """Returns the server's open file descriptors."""
        return len(os.listdir(f"/proc/{self.server.pid}/fd"))

    def clocks(self) -> dict[str, float]:
        """Returns the counters the CPU figures are deltas of, in seconds: the server's CPU,
        its event loop's wait for a CPU while ready to run, and all the work on its core."""
        pid = self.server.pid
        with open(f"/proc/{pid}/task/{pid}/schedstat", encoding="ascii") as fh:
            wait = int(fh.read().split()[1]) / 1e9
        return {"cpu": proc_cpu_seconds(pid), "wait": wait, "core": core_busy_seconds()}

    @staticmethod
    def cpu_figures(now: dict[str, Any], then: dict[str, Any], span: float) -> dict[str, float]:
        """Returns the server's CPU %, its loop's wait % and the CPU % other processes took on
        its core (the core's work less the server's) between two clocks() readings."""
        def pct(key: str) -> float:
            return 100 * (now[key] - then.get(key, now[key])) / span

        return {"cpu_pct": round(pct("cpu"), 1), "wait_pct": round(pct("wait"), 1),
                "others_pct": round(max(0.0, pct("core") - pct("cpu")), 1)}

    def fd_kinds(self) -> dict[str, int]:
        """Returns the server's descriptors by what they are: socket, pipe, anon_inode, or the
        file's name (so a difference from the baseline says what was left open)."""
        kinds: collections.Counter[str] = collections.Counter()
        folder = f"/proc/{self.server.pid}/fd"
        for fd in os.listdir(folder):
            with contextlib.suppress(OSError):
                target = os.readlink(os.path.join(folder, fd))
                kinds[os.path.basename(target) if target.startswith("/")
                      else target.split(":", 1)[0]] += 1
        return dict(kinds)

    def each(self, cmd: dict[str, Any], per: list[dict[str, Any]]) -> Any:
        """Sends cmd to every worker, with that worker's own fields from per."""
        cmd = {"host": "127.0.0.1", "port": self.port, "sources": SOURCES, **cmd}
        return asyncio.gather(*(w.call({**cmd, **mine}) for w, mine in zip(
            self.pool.workers, per, strict=True)))

    async def connect(self, kind: str, tokens: list[str], rooms: list[str] | None = None,
                      timeout: float = 60.0) -> dict[str, Any]:
        """Opens one client of kind per token (client i in rooms[i]), worker by worker: a room's
        members all on one worker, so that worker numbers the room's messages."""
        workers, calls = self.pool.workers, []
        for i, w in enumerate(workers):
            mine = [j for j in range(len(tokens)) if (
                rooms is None and j % len(workers) == i
                or rooms is not None and int(rooms[j][1:]) % len(workers) == i)]
            if mine:
                calls.append(w.call({"cmd": "soak_connect", "host": "127.0.0.1",
                                     "port": self.port, "sources": SOURCES, "kind": kind,
                                     "tokens": [tokens[j] for j in mine], "timeout": timeout,
                                     "rooms": [rooms[j] for j in mine] if rooms else None},
                                    timeout + 30))
        total: dict[str, Any] = {"ok": 0, "failed": 0, "errors": {}}
        for reply in await asyncio.gather(*calls):
            add_counts(total, reply)
        return total

    async def connect_all(self) -> None:
        """Opens the feed and room clients (the steady population)."""
        p = self.plan
        timeout = max(60.0, p.connections / 50)
        began = time.monotonic()
        feed = await self.connect("feed", self.tokens[:p.feed], timeout=timeout)
        members = [self.rooms[r] for r in range(p.rooms) for _ in range(p.members)]
        room = await self.connect("room", self.tokens[p.feed:p.feed + len(members)], members,
                                  timeout)
        self.result["connect"] = {"feed": feed, "room": room,
                                  "wall_s": round(time.monotonic() - began, 1)}
        self.clock.say(f"connected {feed['ok']} feed and {room['ok']} room clients in "
                       f"{time.monotonic() - began:.1f} s; failed {feed['failed']} "
                       f"{feed['errors']} {room['failed']} {room['errors']}")

    async def slow_batches(self, t0: float, end: float) -> None:
        """Opens a batch of slow consumers at the start, then one a minute while the server's
        heartbeat (54 + 6 s) can still drop it before the end."""
        rng = random.Random(3)
        for k in range(1 << 20):
            at = t0 + 60.0 * k
            if k and at + 65.0 > end:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            reply = await self.connect("slow", rng.sample(self.tokens, self.plan.slow))
            self.slow["opened"] += reply["ok"]
            self.slow["failed"] += reply["failed"]

    async def sample(self, t0: float, values: array) -> dict[str, Any]:
        """Takes one sample: the workers' counters and latencies, the server's RSS and fds."""
        paths = [os.path.join(self.tmp, f"lat-{w.index}.bin") for w in self.pool.workers]
        replies = await asyncio.gather(*(w.call({"cmd": "soak_tick", "path": path})
                                         for w, path in zip(self.pool.workers, paths,
                                                            strict=True)))
        got = array("d")
        for path in paths:
            with open(path, "rb") as fh:
                got.fromfile(fh, os.path.getsize(path) // got.itemsize)
        values.extend(got)
        ticks: dict[str, Any] = {}
        for reply in replies:
            add_counts(ticks, reply)
        now, before = time.monotonic(), self.ticks
        got = array("d", sorted(got))
        clocks, span = self.clocks(), max(1e-6, now - before.get("at", t0))
        sample = {"t_s": round(now - t0, 2), "rss_kib": proc_rss_kib(self.server.pid),
                  "fds": self.fds(), "lag_ms": round(1000 * self.traffic.take_lag(), 2),
                  **self.cpu_figures(clocks, before, span),
                  # Slow consumers stay open on their side (they read nothing, not even the close)
                  "open": sum(n for kind, n in ticks["open"].items() if kind != "slow"),
                  "received": ticks["received"],
                  "deliveries_per_s": round((ticks["received"] - before.get("received", 0))
                                            / span, 1),
                  "p99_ms": _p99_ms(got)}
        self.ticks = {**ticks, "at": now, **clocks}
        self.result["samples"].append(sample)
        return sample

    def row(self, index: int, samples: list[dict[str, Any]], values: array,
            start: dict[str, Any]) -> dict[str, Any]:
        """Returns one interval's row from its samples, latencies and the counters at its
        start."""
        t, last, tr = self.ticks, samples[-1], self.traffic
        values = array("d", sorted(values))
        span = max(1e-6, t["at"] - start.get("at", t["at"] - self.plan.interval))
        dropped = sum(t.get("dropped", {}).get(k, 0) for k in HEALTHY)
        return {"interval": index, "t_s": last["t_s"], "open": last["open"],
                "rss_kib": statistics.median(s["rss_kib"] for s in samples), "fds": last["fds"],
                "lag_ms": max(s["lag_ms"] for s in samples),
                **self.cpu_figures(t, start, span),
                "deliveries_per_s": round((t["received"] - start.get("received", 0)) / span, 1),
                "p50_ms": round(1000 * percentile(values, 50), 2) if values else None,
                "p99_ms": _p99_ms(values),
                "latencies": len(values),
                "connects": t["churn_opened"] - start.get("churn_opened", 0),
                "disconnects": t["churn_closed"] - start.get("churn_closed", 0),
                "broadcasts": len(tr.alerts) - start.get("alerts", 0),
                "room_messages": t["acked"] - start.get("acked", 0),
                "logins": tr.logins_ok - start.get("logins", 0),
                "failed": (sum(tr.failures.values()) + t["churn_failed"]
                           - start.get("failed", 0)),
                "dropped": dropped - start.get("dropped", 0)}

    async def intervals(self, t0: float) -> None:
        """Samples through every interval and prints its line."""
        p, done = self.plan, 0
        step = p.interval / p.samples_per_interval
        # The p99s of the last p.window intervals: each row's window figure is their median.
        recent: collections.deque[float] = collections.deque(maxlen=p.window)
        for i in range(1, p.intervals + 1):
            t, tr = self.ticks, self.traffic
            start = {**t, "alerts": len(tr.alerts), "logins": tr.logins_ok,
                     "failed": sum(tr.failures.values()) + t.get("churn_failed", 0),
                     "dropped": sum(t.get("dropped", {}).get(k, 0) for k in HEALTHY)}
            samples, values = [], array("d")
            for _ in range(p.samples_per_interval):
                done += 1
                await asyncio.sleep(max(0.0, t0 + done * step - time.monotonic()))
                samples.append(await self.sample(t0, values))
            row = self.row(i, samples, values, start)
            if row["p99_ms"] is not None:
                recent.append(row["p99_ms"])
            row["window_p99_ms"] = statistics.median(recent) if recent else None
            self.result["rows"].append(row)
            self.clock.say(soakreport.line(row, p))

    async def run(self) -> dict[str, Any]:
        """Connects, takes the baseline, runs every load for the planned time, then checks."""
        p, tr, res = self.plan, self.traffic, self.result
        await self.connect_all()
        res["lag_source"] = await tr.detect_lag_source()
        await tr.login(0)
        await asyncio.sleep(2.0)
        res["baseline"] = {"fds": self.fds(), "rss_kib": proc_rss_kib(self.server.pid),
                           "fd_kinds": self.fd_kinds()}
        self.clock.say(f"baseline: {res['baseline']['fds']} fds, "
                       f"{res['baseline']['rss_kib'] / 1024:.1f} MiB; event-loop lag from "
                       f"{res['lag_source']}; the load starts")
        t0 = time.monotonic()
        end = t0 + p.intervals * p.interval
        self.ticks = {"at": t0, "received": 0, **self.clocks()}
        workers = len(self.pool.workers)
        await self.each({"cmd": "soak_churn", "rate": p.churn_rate / workers,
                         "lifetime": p.churn_lifetime, "tokens": self.tokens},
                        [{"seed": i} for i in range(workers)])
        await self.each({"cmd": "soak_publish", "interval": p.room_interval},
                        [{"rooms": [r for r in self.rooms if int(r[1:]) % workers == i],
                          "seed": i} for i in range(workers)])
        loads = [asyncio.ensure_future(x) for x in (
            tr.broadcasts(end), tr.every(p.login_rate, end, tr.login),
            tr.every(1.0, end, tr.probe), self.slow_batches(t0, end))]
        try:
            await self.intervals(t0)
            await asyncio.gather(*loads)
        finally:
            for task in loads:
                task.cancel()
        await self.finish()
        return res

    async def finish(self) -> None:
        """Stops the churn and the rooms, waits for the last deliveries, checks every client's
        numbers, waits for the descriptors to come back, releases the slow consumers."""
        res, pool, tr = self.result, self.pool, self.traffic
        res["churn"] = await pool.summed({"cmd": "soak_churn_stop"})
        res["publish"] = await pool.summed({"cmd": "soak_publish_stop"}, 60)
        acked = res["publish"].pop("acked", {})
        res["publish"]["acked"] = sum(len(v) for v in acked.values())
        last, quiet = -1, time.monotonic()
        while time.monotonic() - quiet < 2.0:  # the last deliveries arrive
            got = (await pool.summed({"cmd": "stats"}))["received"]
            if got != last:
                last, quiet = got, time.monotonic()
            await asyncio.sleep(0.25)
        res["check"] = await pool.summed({"cmd": "soak_check", "alerts": tr.alerts,
                                          "rooms": acked}, 180)
        began, baseline = time.monotonic(), res["baseline"]["fds"]
        while self.fds() > baseline and time.monotonic() - began < 90:
            await asyncio.sleep(0.5)
        res["after"] = {"fds": self.fds(), "rss_kib": proc_rss_kib(self.server.pid),
                        "waited_s": round(time.monotonic() - began, 1),
                        "fd_kinds": self.fd_kinds()}
        res["slow"] = {**self.slow, **await pool.summed({"cmd": "soak_release"})}
        res["server_stats"] = {k: v for k, v in (await tr.stats()).items()
                               if not isinstance(v, (dict, list))}
        times = sorted(tr.login_times)
        res["traffic"] = {"broadcasts_acked": len(tr.alerts), "logins_ok": tr.logins_ok,
                          "login_p99_ms": round(1000 * percentile(times, 99), 1) if times
                          else None, "failures": dict(tr.failures)}
        self.clock.say(soakreport.summary(res))


def _p99_ms(values: array) -> float | None:
    """Returns the p99 of sorted latencies in seconds, in ms, or None without any."""
    return round(1000 * percentile(values, 99), 2) if values else None
