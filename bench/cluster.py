"""The cluster workloads (C1-C3): the Redis broker's cost, two nodes, and a node killed.

C1: one node, W2 broadcasts, `--broker=memory` against `--broker=redis` (ABBA order, each
start measured over several W2 phases): server CPU per delivered message, and its ratio.
C2: two nodes on one PostgreSQL database and one Redis, `cluster_clients` clients on each;
alerts are published on node A only: delivered msgs/s, latency on A (local) and B
(cross-node), and each node's CPU per message it delivered.
C3: the same two nodes behind nginx; storm clients (bench/stormclient.py) connect through it
and receive numbered alerts; node A is SIGKILLed; its clients reconnect through nginx to B
with since/epoch; time until every one has recovered, and gaps and duplicates per client.
Nodes are pinned to the server core; load generators, Redis and nginx to the client core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from typing import Any

from bench.modes import (
    CLIENT_CORE,
    PING_INTERVAL,
    PING_TIMEOUT,
    SECRET,
    SERVER_CORE,
    TOKEN_TTL,
    Mode,
)
from bench.overhead import measure, summarize
from bench.pool import Pool
from bench.procs import Proc, Worker, free_port, pinned
from bench.schema import fmt
from bench.stats import proc_cpu_seconds, summarize_latencies
from bench.storm import Publisher, storm_figures
from bench.triggers import ProductTrigger
from bench.workloads import Bench

__all__ = ["ClusterBench", "POSTGRES_ADMIN"]

POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES_URL",
                                "postgresql://postgres@127.0.0.1:5432/postgres")


def _pin(pid: int, core: int) -> None:
    """Pins a running process to core (a no-op where affinity is unavailable)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(pid, {core})


class ClusterBench:
    """Runs C1, C2 and C3 and returns their results."""

    def __init__(self, mode: Mode, tmp: str, clock: Any, deadline: float) -> None:
        self.mode, self.tmp, self.clock, self.deadline = mode, tmp, clock, deadline
        self.tag = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.redis = None
        self.result: dict[str, Any] = {}
        self.procs: list[Proc] = []
        self.workers: list[Worker] = []
        self.nginx = None
        self.database = ""

    def say(self, text: str) -> None:
        """Prints a progress line."""
        self.clock.say(f"cluster: {text}")

    def time_left(self) -> float:
        """Returns the seconds left in the cluster budget."""
        return self.deadline - time.monotonic()

    def broker_args(self, prefix: str) -> list[str]:
        """Returns the node options for the Redis broker under prefix."""
        return ["--broker", "redis", "--redis-url", self.redis.url, "--redis-prefix", prefix]

    async def run(self) -> dict[str, Any]:
        """Starts a private Redis, runs C1 to C3 within the budget, stops everything."""
        from localcluster.services import PrivateRedis

        self.redis = PrivateRedis(os.path.join(self.tmp, "redis"))
        self.redis.start()
        _pin(self.redis.child.pid, CLIENT_CORE)
        try:
            steps = (("broker_cost", self.c1), ("two_nodes", self.c2), ("kill_node", self.c3))
            only = os.environ.get("BENCH_CLUSTER_STEPS")  # development: e.g. "kill_node"
            for name, step in steps:
                if only and name not in only.split(","):
                    continue
                try:
                    self.result[name] = await step()
                except Exception as exc:  # noqa: BLE001 - a failed step is reported, not fatal
                    self.say(f"{name}: FAILED {type(exc).__name__}: {exc}")
                    self.result[name] = {**self.result.get(name, {}),
                                         "error": f"{type(exc).__name__}: {exc}"}
        finally:
            await self.stop()
        return self.result

    # -- C1 ------------------------------------------------------------------------------

    async def c1(self) -> dict[str, Any]:
        """W2 on one node with the memory broker and with the Redis broker, ABBA order."""
        m = self.mode
        rounds: list[dict[str, Any]] = []
        for r in range(m.cluster_broker_rounds):
            order = ("memory", "redis") if r % 2 == 0 else ("redis", "memory")
            row: dict[str, Any] = {"order": list(order)}
            for setting in order:
                tmp = os.path.join(self.tmp, f"c1-{r}-{setting}")
                os.makedirs(tmp)
                bench = Bench("product", m, tmp, self.clock, time.monotonic() + 400, False)
                if setting == "redis":
                    bench.extra_args = self.broker_args(f"{self.tag}_c1_{r}")
                redis_cpu0 = self.redis_cpu()
                try:
                    runs = await measure(bench, m.cluster_broker_phases)
                finally:
                    await bench.stop()
                row[setting] = {"phases": runs, **summarize(runs),
                                "redis_cpu_s": self.redis_cpu() - redis_cpu0}
                self.say(f"C1 {setting}: {row[setting]['cpu_us_per_msg']:.2f} us/msg")
            row["ratio"] = row["redis"]["cpu_us_per_msg"] / row["memory"]["cpu_us_per_msg"]
            rounds.append(row)
        redis = statistics.median(r["redis"]["cpu_us_per_msg"] for r in rounds)
        memory = statistics.median(r["memory"]["cpu_us_per_msg"] for r in rounds)
        return {"rounds": rounds, "connections": m.connections, "cpu_us_per_msg_redis": redis,
                "cpu_us_per_msg_memory": memory, "ratio": redis / memory}

    def redis_cpu(self) -> float:
        """Returns the private Redis server's CPU seconds so far (INFO cpu: microseconds,
        where /proc counts 10 ms ticks)."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            info = client.info("cpu")
            return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        finally:
            client.close()

    # -- two nodes -----------------------------------------------------------------------

    async def start_nodes(self) -> None:
        """Seeds a fresh PostgreSQL database and starts nodes A and B and their workers."""
        from bench.seed import seed
        from localcluster.services import create_database, with_database

        m = self.mode
        self.database = self.tag  # the nodes share it with the seeding; dropped in stop()
        create_database(POSTGRES_ADMIN, self.database)
        url = with_database(POSTGRES_ADMIN, self.database)
        users = max(1, 2 * m.cluster_clients // m.tabs)
        self.say(f"seeding {users} users into PostgreSQL database {self.database}")
        self.seeded = await asyncio.to_thread(seed, os.path.join(self.tmp, "c2"), SECRET,
                                              users, TOKEN_TTL, url)
        self.ports = [free_port(), free_port()]
        for i, port in enumerate(self.ports):
            argv = [sys.executable, "main.py", "--address", "127.0.0.1", "--port", str(port),
                    "--data-dir", os.path.join(self.tmp, f"node{i}"), "--database-url", url,
                    "--jwt-secret", SECRET, "--rate-limits", "off", "--access-token-ttl",
                    str(TOKEN_TTL), "--ping-interval", str(PING_INTERVAL), "--ping-timeout",
                    str(PING_TIMEOUT), "--trusted-proxies", "127.0.0.1",
                    *self.broker_args(f"{self.tag}_c2")]
            proc = Proc(f"node{i}", pinned(SERVER_CORE, argv),
                        os.path.join(self.tmp, f"node{i}.log"))
            await proc.start()
            self.procs.append(proc)
            await self._wait_port(proc, port)
        half = max(1, m.workers // 2)
        for i in range(2 * half):
            w = Worker(i, os.path.join(self.tmp, f"c2-loadgen-{i}.log"), self.time_left() + 60)
            await w.start()
            self.workers.append(w)
        self.pools = [Pool(self.workers[:half]), Pool(self.workers[half:])]

    async def _wait_port(self, proc: Proc, port: int) -> None:
        """Waits until a node accepts connections."""
        for _ in range(300):
            if proc.proc.returncode is not None:
                raise RuntimeError(f"{proc.name} exited early; see {proc.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{proc.name} did not listen on {port}")

    async def c2(self) -> dict[str, Any]:
        """Two nodes with cluster_clients each; alerts published on node A."""
        m = self.mode
        await self.start_nodes()
        tokens = [t for t in self.seeded.user_tokens for _ in range(m.tabs)]
        sources = [f"127.0.0.{i}" for i in range(2, 10)]
        n = m.cluster_clients
        self.say(f"C2 connecting {n} clients to each node")
        conns = await asyncio.gather(*(
            pool.connect("127.0.0.1", port, tokens, n, sources, offset=i * n, timeout=150)
            for i, (pool, port) in enumerate(zip(self.pools, self.ports, strict=True))))
        self.say("C2 connected " + ", ".join(f"{c['ok']} ({c['errors']})" for c in conns))
        await asyncio.sleep(2.0)
        trigger = ProductTrigger(f"http://127.0.0.1:{self.ports[0]}", self.seeded.admin_token)
        await trigger.open()
        try:
            out = await self._c2_phase(trigger, m.cluster_broadcasts)
        finally:
            await trigger.close()
        out["connected"] = [c["ok"] for c in conns]
        self.say(f"C2 {fmt(out['msgs_per_s'], 0)} msgs/s; p50/p99 local "
                 f"{fmt(out['local']['p50_ms'], 1)}/{fmt(out['local']['p99_ms'], 1)} ms, "
                 f"cross-node {fmt(out['cross']['p50_ms'], 1)}/{fmt(out['cross']['p99_ms'], 1)}"
                 f" ms; CPU us/msg A {fmt(out['cpu_us_per_msg'][0], 2)} "
                 f"B {fmt(out['cpu_us_per_msg'][1], 2)}; delivered {out['delivered']} of "
                 f"{out['expected']}")
        for pool in self.pools:
            await pool.all({"cmd": "close_all"})
        return out

    async def _c2_phase(self, trigger: ProductTrigger, count: int) -> dict[str, Any]:
        """Sends count alerts one at a time to node A; measures both nodes."""
        everyone = Pool(self.workers)
        await everyone.all({"cmd": "reset"})
        expect = [(await p.stats())["open_recording"] for p in self.pools]
        idle0, t0 = self.redis_cpu(), time.monotonic()
        await asyncio.sleep(2.0)
        redis_idle_per_s = (self.redis_cpu() - idle0) / (time.monotonic() - t0)
        cpu0 = [proc_cpu_seconds(p.pid) for p in self.procs]
        redis0, began_mono = self.redis_cpu(), time.monotonic()
        began = time.time()
        sent = 0
        for seq in range(count):
            if self.time_left() < 60:
                break
            await trigger.send(seq)
            sent += 1
        sent_done = time.time()
        for _ in range(300):
            if (await everyone.stats())["received"] >= sent * sum(expect):
                break
            await asyncio.sleep(0.1)
        stats = [await p.stats() for p in self.pools]
        cpu = [proc_cpu_seconds(p.pid) - c for p, c in zip(self.procs, cpu0, strict=True)]
        redis_cpu = self.redis_cpu() - redis0
        redis_net = redis_cpu - redis_idle_per_s * (time.monotonic() - began_mono)
        wall = max([s["last_recv"] for s in stats] + [sent_done]) - began
        delivered = [s["received"] for s in stats]
        lat = [summarize_latencies(await p.latencies(self.tmp, f"c2-{i}"))
               for i, p in enumerate(self.pools)]
        return {"broadcasts": sent, "recipients": expect, "delivered": delivered,
                "expected": [sent * e for e in expect], "wall_s": wall,
                "msgs_per_s": sum(delivered) / wall if wall > 0 else None,
                "cpu_s": cpu, "cpu_us_per_msg": [1e6 * c / d if d else None
                                                 for c, d in zip(cpu, delivered, strict=True)],
                "redis_cpu_s": redis_cpu, "redis_idle_cpu_per_s": redis_idle_per_s,
                "redis_cpu_us_per_broadcast": 1e6 * redis_net / max(1, sent),
                "local": lat[0], "cross": lat[1]}

    # -- C3 ------------------------------------------------------------------------------

    async def c3(self) -> dict[str, Any]:
        """Both nodes behind nginx; storm clients through it; node A SIGKILLed mid-stream."""
        from localcluster.nginx import Nginx, install_nginx

        m = self.mode
        if not self.procs:
            await self.start_nodes()
        port = free_port()
        self.nginx = Nginx(os.path.join(self.tmp, "nginx"), port,
                           [f"127.0.0.1:{p}" for p in self.ports], install_nginx(),
                           connections=3 * m.cluster_kill_clients + 1024)
        self.nginx.start()
        _pin(self.nginx.child.pid, CLIENT_CORE)
        pool = Pool(self.workers)
        tokens = self.seeded.user_tokens
        count = m.cluster_kill_clients
        shares = [count // len(self.workers) + (i < count % len(self.workers))
                  for i in range(len(self.workers))]
        calls, start = [], 0
        for i, (w, share) in enumerate(zip(self.workers, shares, strict=True)):
            toks = [tokens[(start + k) % len(tokens)] for k in range(share)]
            start += share
            calls.append(w.call({"cmd": "storm_connect", "host": "127.0.0.1", "port": port,
                                 "tokens": toks, "sources": [f"127.0.0.{j}" for j in
                                                             range(2, 10)],
                                 "seed": 31 + i, "base": 0.2, "cap": 2.0, "concurrency": 32,
                                 "timeout": 120}, 180))
        replies = await asyncio.gather(*calls)
        ok = sum(r["ok"] for r in replies)
        errors: dict[str, int] = {}
        for r in replies:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        self.say(f"C3 {ok} clients through nginx {errors}")
        if errors:
            self.say("nginx error log: " + " | ".join(self.nginx.error_log().splitlines()[-3:]))
        res: dict[str, Any] = {"clients": ok, "clients_planned": count,
                               "connect_errors": errors}
        pub = Publisher(self.nginx.url, self.seeded.admin_token, m.cluster_kill_rate)
        task = asyncio.ensure_future(pub.run(max(10.0, self.time_left() - 20)))
        try:
            await asyncio.sleep(m.storm_before)
            cut = time.time()
            self.say("C3 SIGKILL node A")
            self.procs[0].proc.kill()
            await self.procs[0].proc.wait()
            await asyncio.sleep(1.0)
            lost = 0
            status: dict[str, int] = {}
            for _ in range(int(m.storm_timeout * 10)):
                status = await self._status(pool, cut)
                lost = max(lost, ok - status["open"])
                if status["open"] >= ok and status["resumed"] >= lost and status[
                        "recovered"] + status["not_recovered"] >= status["resumed"]:
                    break
                await asyncio.sleep(0.1)
            res["clients_cut"] = status.get("resumed", 0)
            self.say(f"C3 status {status}")
            await asyncio.sleep(m.storm_after)
        finally:
            pub.running = False
            await task
            pub.close()
        await asyncio.sleep(2.0)
        checks = await pool.all({"cmd": "storm_check", "acked": pub.acked, "cut": cut}, 120)
        await pool.all({"cmd": "storm_stop"})
        check: dict[str, Any] = {}
        for r in checks:
            for k, v in r.items():
                if k != "id":
                    check[k] = check.get(k, 0 if not isinstance(v, list) else []) + v
        res.update({k: v for k, v in check.items() if k not in ("recovery_s", "resumed_at")})
        res.update(storm_figures(check, res["clients_cut"], 0.0))
        res.update(published=len(pub.acked), publish_failed=pub.failed,
                   rate=m.cluster_kill_rate)
        self.say(f"C3 {res['recovered_clients']} of {res['clients_cut']} cut clients recovered "
                 f"in {res['recovery_max_s']} s (p50 {res['recovery_p50_s']}), gaps "
                 f"{res['gaps']}, duplicates {res['duplicates']}, out of order "
                 f"{res['out_of_order']}, not recovered {res['not_recovered']}")
        return res

    async def _status(self, pool: Pool, cut: float) -> dict[str, int]:
        """Returns the workers' storm status summed."""
        out: dict[str, int] = {}
        for r in await pool.all({"cmd": "storm_status", "cut": cut}):
            for k, v in r.items():
                if k != "id":
                    out[k] = out.get(k, 0) + v
        return out

    async def stop(self) -> None:
        """Stops nginx, the workers, the nodes and Redis; drops the database."""
        from localcluster.services import drop_database

        if self.nginx is not None:
            self.nginx.stop()
        for w in self.workers:
            with contextlib.suppress(Exception):
                await w.call({"cmd": "exit"}, 20)
            await w.stop()
        for p in self.procs:
            await p.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.database:
            with contextlib.suppress(Exception):
                drop_database(POSTGRES_ADMIN, self.database)
