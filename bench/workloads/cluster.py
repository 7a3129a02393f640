"""The cluster workloads: C1 the Redis broker's cost against the memory broker's, C2 two nodes
with alerts published on one, C3 a node SIGKILLed behind nginx, C4 `--workers` 2 against 1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench.modes import CLIENT_CORE, Clock, Mode
from bench.phases import Phases, alternate
from bench.procs import Pool, pin
from bench.server import Seeded, guarded, seed
from bench.stats import proc_runtime_seconds
from bench.triggers import ProductTrigger
from bench.workloads.overhead import abba
from bench.workloads.storm import Publisher, check_clients, wait_status
from localcluster.procs import free_port

__all__ = ["ClusterBench", "POSTGRES_ADMIN"]

POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES_URL",
                                "postgresql://postgres@127.0.0.1:5432/postgres")


class ClusterBench:
    """Runs C1-C3 (part "cluster") and C4 (part "workers"), each within the cluster budget."""

    def __init__(self, mode: Mode, tmp: str, clock: Clock) -> None:
        self.mode, self.tmp, self.clock, self.deadline = mode, tmp, clock, 0.0
        self.tag = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.result: dict[str, Any] = {}
        self.redis: Any = None
        self.nodes: list[Phases] = []
        self.nginx: Any = None
        self.seeded: Seeded | None = None  # C2-C4's users, in the database named tag

    def say(self, text: str) -> None:
        """Prints a progress line."""
        self.clock.say(f"cluster: {text}")

    def broker_args(self, prefix: str) -> tuple[str, ...]:
        """Returns the node options for the Redis broker under prefix."""
        return ("--broker", "redis", "--redis-url", self.redis.url, "--redis-prefix", prefix)

    def redis_cpu(self) -> float:
        """Returns the private Redis server's on-CPU seconds so far, all its threads."""
        return proc_runtime_seconds(self.redis.child.pid)

    async def run(self, parts: set[str]) -> dict[str, Any]:
        """Starts a private Redis, runs the parts asked for and stops everything; their results."""
        from localcluster.services import PrivateRedis

        self.redis = PrivateRedis(os.path.join(self.tmp, "redis"))
        self.redis.start()
        pin(self.redis.child.pid, CLIENT_CORE)
        try:
            if "workers" in parts:  # first: C2's nodes run on until the end
                self.deadline = time.monotonic() + self.mode.cluster_budget_seconds
                self.result["workers"] = await guarded(self.c4(), "cluster: C4", self.clock)
            self.deadline = time.monotonic() + self.mode.cluster_budget_seconds
            for name, step in (("broker_cost", self.c1), ("two_nodes", self.c2),
                               ("kill_node", self.c3)) if "cluster" in parts else ():
                self.result[name] = await guarded(step(), f"cluster: {name}", self.clock)
        finally:
            await self.stop()
        return {"workers": self.result.pop("workers", {}), "cluster": self.result}

    async def c1(self) -> dict[str, Any]:
        """W2 on one node with the memory broker and with the Redis broker, ABBA order."""
        m, tmp = self.mode, os.path.join(self.tmp, "c1")  # alternate() makes the directories
        return {"connections": m.connections, **await abba(
            m, tmp, self.clock, ("memory", "redis"), "redis", m.cluster_broker_rounds,
            m.cluster_broker_phases, lambda setting, r: self.broker_args(
                f"{self.tag}_c1_{r}") if setting == "redis" else ())}

    async def seed_database(self) -> tuple[str, Seeded]:
        """Seeds a fresh PostgreSQL database once (C2-C4 share it; stop() drops it)."""
        from localcluster.services import create_database, with_database

        m, url = self.mode, with_database(POSTGRES_ADMIN, self.tag)
        if self.seeded is None:
            create_database(POSTGRES_ADMIN, self.tag)
            users = max(1, max(2 * m.cluster_clients, m.workers_clients) // m.tabs)
            self.say(f"seeding {users} users into PostgreSQL database {self.tag}")
            self.seeded = await asyncio.to_thread(seed, os.path.join(self.tmp, "db"), users, url)
        return url, self.seeded

    async def start_nodes(self) -> None:
        """Starts nodes A and B with their workers on the seeded database."""
        m, (url, seeded) = self.mode, await self.seed_database()
        mode = dataclasses.replace(m, workers=max(1, m.workers // 2))
        for i in range(2):  # each node's logs in a directory of its own
            os.makedirs(tmp := os.path.join(self.tmp, f"node{i}"))
            node = Phases("product", mode, tmp, self.clock, self.deadline, extra_args=(
                "--database-url", url, "--trusted-proxies", "127.0.0.1",
                *self.broker_args(f"{self.tag}_c2")))
            node.seeded = seeded
            node.trigger = ProductTrigger(f"http://127.0.0.1:{node.port}", seeded.admin_token)
            self.nodes.append(node)
            await node.launch()

    async def c2(self) -> dict[str, Any]:
        """Two nodes with cluster_clients each; alerts sent one at a time to node A."""
        m, nodes = self.mode, self.nodes
        await self.start_nodes()
        n = m.cluster_clients
        self.say(f"C2 connecting {n} clients to each node")
        conns = await asyncio.gather(*(node.connect(n, i * n) for i, node in enumerate(nodes)))
        self.say("C2 connected " + ", ".join(f"{c['ok']} ({c['errors']})" for c in conns))
        await asyncio.sleep(2.0)
        for node in nodes:
            await node.pool.all({"cmd": "reset"})
        expect = [(await node.pool.stats())["open_recording"] for node in nodes]
        idle0, t0 = self.redis_cpu(), time.monotonic()
        await asyncio.sleep(2.0)
        redis_idle = (self.redis_cpu() - idle0) / (time.monotonic() - t0)
        marks, redis0, t0 = [node.mark() for node in nodes], self.redis_cpu(), time.monotonic()
        sent = 0
        for seq in range(m.cluster_broadcasts):
            if self.deadline - time.monotonic() < 60:
                break
            await nodes[0].trigger.send(seq)
            sent += 1
        sent_done = time.time()
        stats = [await node.pool.wait_received(sent * e, limit=30, stall=30)
                 for node, e in zip(nodes, expect, strict=True)]
        redis_cpu = self.redis_cpu() - redis0
        figs = [await node.figures(mark, st, sent_done, "c2")
                for node, mark, st in zip(nodes, marks, stats, strict=True)]
        delivered, wall = [f["delivered"] for f in figs], max(f["wall_s"] for f in figs)
        out = {"broadcasts": sent, "recipients": expect, "delivered": delivered,
               "expected": [sent * e for e in expect], "wall_s": wall,
               "msgs_per_s": sum(delivered) / wall if wall > 0 else None,
               "cpu_us_per_msg": [f["cpu_us_per_msg"] for f in figs],
               "redis_cpu_s": redis_cpu, "redis_idle_cpu_per_s": redis_idle,
               "redis_cpu_us_per_broadcast": 1e6 * (redis_cpu - redis_idle * (
                   time.monotonic() - t0)) / max(1, sent),
               "local": figs[0]["latency"], "cross": figs[1]["latency"],
               "connected": [c["ok"] for c in conns]}
        self.say(f"C2 {out['msgs_per_s'] or 0:,.0f} msgs/s; p99 local "
                 f"{out['local']['p99_ms']:.1f} ms, cross-node {out['cross']['p99_ms']:.1f} ms; "
                 f"delivered {sum(delivered)} of {sum(out['expected'])}")
        for node in nodes:
            await node.pool.all({"cmd": "close_all"})
        return out

    async def c3(self) -> dict[str, Any]:
        """Both nodes behind nginx; storm clients through it; node A SIGKILLed mid-stream."""
        from localcluster.nginx import Nginx, install_nginx

        m = self.mode
        if not self.nodes:
            await self.start_nodes()
        port = free_port()
        self.nginx = Nginx(os.path.join(self.tmp, "nginx"), port,
                           [f"127.0.0.1:{node.port}" for node in self.nodes], install_nginx(),
                           connections=3 * m.cluster_kill_clients + 1024)
        self.nginx.start()
        pin(self.nginx.child.pid, CLIENT_CORE)
        pool = Pool([w for node in self.nodes for w in node.pool.workers])
        seeded = self.nodes[0].seeded
        c = await pool.connect(port, seeded.user_tokens, m.cluster_kill_clients,
                               cmd="storm_connect", seed=31)
        ok, errors = c["ok"], c["errors"]
        self.say(f"C3 {ok} clients through nginx {errors}")
        if errors:
            self.say("nginx error log: " + " | ".join(self.nginx.error_log().splitlines()[-3:]))
        pub = Publisher(self.nginx.url, seeded.admin_token, m.cluster_kill_rate)
        pub.start(max(10.0, self.deadline - time.monotonic() - 20))
        lost = 0

        def settled(s: dict[str, Any]) -> bool:
            """Tells whether every client cut by the kill has resumed and been answered."""
            nonlocal lost
            lost = max(lost, ok - s["open"])
            return s["open"] >= ok and s["resumed"] >= lost and s["recovered"] + s[
                "not_recovered"] >= s["resumed"]

        try:
            await asyncio.sleep(m.storm_before)
            cut = time.time()
            self.say("C3 SIGKILL node A")
            self.nodes[0].server.proc.kill()
            await self.nodes[0].server.proc.wait()
            await asyncio.sleep(1.0)
            status = await wait_status(pool, cut, m.storm_timeout, settled)
            self.say(f"C3 status {status}")
            await asyncio.sleep(m.storm_after)
        finally:
            await pub.stop()
        res = {"clients": ok, "clients_planned": m.cluster_kill_clients, "connect_errors": errors,
               "clients_cut": status.get("resumed", 0)}
        res.update(await check_clients(pool, pub, cut, res["clients_cut"], 0.0))
        self.say(f"C3 {res['recovered_clients']} of {res['clients_cut']} cut clients recovered "
                 f"in {res['recovery_max_s']} s, gaps {res['gaps']}, duplicates "
                 f"{res['duplicates']}, not recovered {res['not_recovered']}")
        return res

    async def c4(self) -> dict[str, Any]:
        """`--workers 1` and `2` in ABBA rounds: handshakes of unseen users, then alerts to all."""
        m, (url, seeded) = self.mode, await self.seed_database()

        async def one(n: str, r: int, path: str) -> dict[str, Any]:
            """Starts the product with n workers; returns its handshake and delivery figures."""
            run = Phases("product", m, path, self.clock, self.deadline, extra_args=(
                "--workers", n, "--database-url", url, *self.broker_args(f"{self.tag}_c4_{n}_{r}")))
            run.core, run.seeded = f"0-{(os.cpu_count() or 1) - 1}", seeded  # on every core
            run.trigger = ProductTrigger(f"http://127.0.0.1:{run.port}", seeded.admin_token)
            try:
                await run.launch()
                async with asyncio.timeout(30):  # every worker serving (it listens before)
                    while Path(run.server.log_path).read_text().count("listening on") < int(n):
                        await asyncio.sleep(0.1)
                c = await run.connect(m.workers_clients)
                await asyncio.sleep(2.0)
                b = await run.broadcast_phase("c4", m.workers_broadcasts, 60.0, window=4)
            finally:
                await run.stop()
            run.say(f"C4 {n}: {c['per_s'] or 0:,.0f} handshakes/s ({c['cpu_us'] or 0:,.0f} us), "
                    f"{b['msgs_per_s'] or 0:,.0f} deliveries/s ({b['cpu_us_per_msg'] or 0:.2f} us)")
            return {"connected": c["ok"], "handshakes_per_s": c["per_s"], "cpu_us_per_handshake":
                    c["cpu_us"], **{k: v for k, v in b.items() if k != "latency_quantiles"}}

        return {"clients": m.workers_clients, "cores": os.cpu_count(), **await alternate(
            os.path.join(self.tmp, "c4"), ("1", "2"), "2", 1 if m.name == "quick" else 2,
            "handshakes_per_s", one, ("cpu_us_per_handshake", "msgs_per_s", "cpu_us_per_msg"))}

    async def stop(self) -> None:
        """Stops nginx, the workers, the nodes and Redis; drops the database (if any)."""
        from localcluster.services import drop_database

        if self.nginx is not None:
            self.nginx.stop()
        for node in self.nodes:
            await node.stop()
        if self.redis is not None:
            self.redis.stop()
        with contextlib.suppress(Exception):
            drop_database(POSTGRES_ADMIN, self.tag)
