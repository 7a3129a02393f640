"""The benchmark orchestrator: `python -m bench.run [--quick]` (`make bench`, `make bench-quick`).

For each server (this product, then the peers) it starts the server pinned to core 0, starts
load-generator processes pinned to core 1, runs the workloads, samples the server's own CPU
and memory accounting around each one, stops everything, and finally writes
bench/results/<timestamp>.json and regenerates docs/benchmarks.md with its plots.

Workloads (see docs/benchmarks.md for the definitions): W1 idle connections, W2 broadcast to
all, W3 targeted sends with few and many bystanders (product only), W5 login storm during a
broadcast run (product only), W4 slow consumers during a broadcast run. All traffic stays on
127.0.0.0/8; every loop is bounded in count and time; child processes get SIGTERM if this
process dies (PR_SET_PDEATHSIG) and are killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import report  # noqa: E402
from bench.stats import (  # noqa: E402
    parse_schedstat_ns,
    proc_cpu_seconds,
    proc_rss_kib,
    proc_runtime_seconds,
    quantile_points,
    summarize_latencies,
)

SECRET = "bench-secret-" + "s" * 40
TOKEN_TTL = 3600
NOFILE = 20000
SERVER_CORE = 0
CLIENT_CORE = 1
PING_INTERVAL = 300.0  # the same for every server: no ping storms inside a measurement
PING_TIMEOUT = 60.0
SERVERS = ("product", "websockets", "tornado", "node")


@dataclass(frozen=True)
class Mode:
    """Sizes of one run."""

    name: str
    users: int  # bystander users; connections = users * tabs
    tabs: int
    workers: int
    w2_broadcasts: int
    w3_sends: int
    w3_few: int  # bystanders connected in the W3 "few" phase
    w4_broadcasts: int
    w4_pad: int  # bytes of padding in W4 alerts (slow readers fill their buffers sooner)
    w4_max_seconds: float
    w5_broadcasts: int
    w5_logins: int  # concurrent login loops
    budget_seconds: float

    @property
    def connections(self) -> int:
        return self.users * self.tabs


MODES = {
    "full": Mode("full", users=1000, tabs=10, workers=4, w2_broadcasts=40, w3_sends=300, w3_few=10,
                 w4_broadcasts=300, w4_pad=512, w4_max_seconds=50.0, w5_broadcasts=40,
                 w5_logins=16, budget_seconds=560.0),
    "quick": Mode("quick", users=200, tabs=10, workers=2, w2_broadcasts=20, w3_sends=100,
                  w3_few=10, w4_broadcasts=320, w4_pad=512, w4_max_seconds=10.0,
                  w5_broadcasts=20, w5_logins=8, budget_seconds=110.0),
}


class Clock:
    """Progress lines with the time since the run started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {text}", flush=True)


def _child_setup() -> None:
    """Runs in each child before exec: ulimit -n 20000 and SIGTERM when this process dies."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pinned(core: int, argv: list[str]) -> list[str]:
    return (["taskset", "-c", str(core)] + argv) if shutil.which("taskset") else argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: str, cwd: str = ROOT,
                 pipes: bool = False) -> None:
        self.name, self.argv, self.log_path, self.cwd, self.pipes = name, argv, log_path, cwd, pipes
        self.proc: asyncio.subprocess.Process | None = None
        self._log = None

    async def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, preexec_fn=_child_setup,
            stdin=asyncio.subprocess.PIPE if self.pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if self.pipes else self._log,
            stderr=self._log, limit=256 * 1024 * 1024,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, grace: float = 8.0) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()


class Worker(Proc):
    """A load-generator process spoken to with JSON lines."""

    def __init__(self, index: int, log_path: str, max_seconds: float) -> None:
        argv = _pinned(CLIENT_CORE, [sys.executable, "-m", "bench.loadgen",
                                     "--max-seconds", str(int(max_seconds))])
        super().__init__(f"loadgen-{index}", argv, log_path, pipes=True)
        self.index = index
        self._next = 0
        self._lock = asyncio.Lock()

    async def call(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        async with self._lock:
            self._next += 1
            cmd = {**cmd, "id": self._next}
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited (see {self.log_path})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply


class Pool:
    """All load-generator processes of one server's run."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def all(self, cmd: dict[str, Any], timeout: float = 120.0) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(w.call(cmd, timeout) for w in self.workers)))

    async def stats(self) -> dict[str, Any]:
        replies = await self.all({"cmd": "stats"})
        merged: dict[str, Any] = {"received": 0, "other": 0, "open": 0, "open_recording": 0,
                                  "lost": 0, "last_recv": 0.0, "by_type": {}, "close_codes": {}}
        for r in replies:
            for key in ("received", "other", "open", "open_recording", "lost"):
                merged[key] += r[key]
            merged["last_recv"] = max(merged["last_recv"], r["last_recv"])
            for key in ("by_type", "close_codes"):
                for k, v in r[key].items():
                    merged[key][k] = merged[key].get(k, 0) + v
        return merged

    async def latencies(self, tmp: str, tag: str) -> array:
        values = array("d")
        paths = [os.path.join(tmp, f"lat-{tag}-{w.index}.bin") for w in self.workers]
        await asyncio.gather(*(w.call({"cmd": "dump", "path": p})
                               for w, p in zip(self.workers, paths, strict=True)))
        for path in paths:
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                values.fromfile(fh, size // values.itemsize)
            os.unlink(path)
        return values

    def cpu_seconds(self) -> float:
        total = 0.0
        for w in self.workers:
            with contextlib.suppress(OSError):
                total += proc_cpu_seconds(w.pid)
        return total

    async def connect(self, host: str, port: int, tokens: list[str], count: int,
                      sources: list[str], offset: int = 0, tag: str = "",
                      timeout: float = 120.0) -> dict[str, Any]:
        """Opens count connections spread over the workers; returns totals and wall time."""
        n = len(self.workers)
        shares = [count // n + (1 if i < count % n else 0) for i in range(n)]
        began = time.time()
        replies = []
        start = offset
        calls = []
        for w, share in zip(self.workers, shares, strict=True):
            if share == 0:
                continue
            toks = [tokens[(start + i) % len(tokens)] for i in range(share)]
            start += share
            calls.append(w.call({"cmd": "connect", "host": host, "port": port, "path": "/ws",
                                 "tokens": toks, "count": share, "sources": sources,
                                 "concurrency": 32, "timeout": timeout, "tag": tag,
                                 "small_rcvbuf_every": 50},
                                timeout + 30))
        replies = await asyncio.gather(*calls)
        wall = time.time() - began
        ok = sum(r["ok"] for r in replies)
        errors: dict[str, int] = {}
        for r in replies:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"ok": ok, "failed": count - ok, "wall_s": wall, "errors": errors,
                "handshake_ms_mean": (sum(r["handshake_ms_sum"] for r in replies) / ok
                                      if ok else None)}


class Trigger:
    """Sends one broadcast and waits for the server's acknowledgement."""

    async def open(self) -> None: ...

    async def send(self, seq: int, pad: str = "") -> int:
        raise NotImplementedError

    async def close(self) -> None: ...


class ProductTrigger(Trigger):
    """POST /ws/broadcast with the admin's bearer token (the product's own API)."""

    def __init__(self, base: str, admin_token: str) -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.base = base
        self.headers = {"Authorization": f"Bearer {admin_token}",
                        "Content-Type": "application/json"}
        self.http = AsyncHTTPClient(force_instance=True, max_clients=64)

    async def send(self, seq: int, pad: str = "") -> int:
        metadata: dict[str, Any] = {"pad": pad} if pad else {}
        metadata["seq"] = seq
        metadata["t"] = time.time()
        body = json.dumps({"message": "bench", "priority": "normal", "metadata": metadata},
                          separators=(",", ":"))
        resp = await self.http.fetch(self.base + "/ws/broadcast", method="POST", body=body,
                                     headers=self.headers, request_timeout=60)
        return int(json.loads(resp.body)["recipients"])

    async def close(self) -> None:
        self.http.close()


class PeerTrigger(Trigger):
    """A control WebSocket: the peer broadcasts each text it gets there and answers "ok <n>".

    Replies come back in order, so a reader task hands each to the oldest waiting send().
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = None
        self.pending: collections.deque[asyncio.Future] = collections.deque()
        self.reader: asyncio.Task | None = None

    async def open(self) -> None:
        from tornado.websocket import websocket_connect

        self.conn = await asyncio.wait_for(websocket_connect(self.url, max_message_size=1 << 20),
                                           10)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        for _ in range(10_000_000):
            reply = await self.conn.read_message()
            if reply is None:
                break
            if self.pending:
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError("control connection closed"))

    async def send(self, seq: int, pad: str = "") -> int:
        metadata: dict[str, Any] = {"pad": pad} if pad else {}
        metadata["seq"] = seq
        metadata["t"] = time.time()
        event = {"type": "system.alert",
                 "data": {"message": "bench", "priority": "normal", "metadata": metadata,
                          "sent_by": 1},
                 "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        await self.conn.write_message(json.dumps(event, separators=(",", ":")))
        reply = await asyncio.wait_for(fut, 60)
        if not isinstance(reply, str) or not reply.startswith("ok "):
            raise RuntimeError(f"unexpected control reply {reply!r}")
        return int(reply[3:])

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.reader is not None:
            self.reader.cancel()


class Bench:
    """Runs every workload against one server and returns its results."""

    def __init__(self, name: str, mode: Mode, tmp: str, clock: Clock, deadline: float,
                 profile: bool) -> None:
        self.name, self.mode, self.tmp, self.clock = name, mode, tmp, clock
        self.deadline = deadline
        self.profile = profile
        self.port = free_port()
        self.server: Proc | None = None
        self.pool: Pool | None = None
        self.trigger: Trigger | None = None
        self.sources = [f"127.0.0.{i}" for i in range(2, 2 + 8)]
        self.result: dict[str, Any] = {"workloads": {}, "notes": []}
        self.seeded = None

    def say(self, text: str) -> None:
        self.clock.say(f"{self.name}: {text}")

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    # -- processes ---------------------------------------------------------------------

    def server_argv(self) -> list[str]:
        py = sys.executable
        common = ["--address", "127.0.0.1", "--port", str(self.port),
                  "--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT)]
        if self.name == "product":
            data = os.path.join(self.tmp, "product-data")
            return [py, "main.py", "--data-dir", data, "--jwt-secret", SECRET,
                    "--rate-limits", "off", "--access-token-ttl", str(TOKEN_TTL), *common]
        budget = str(int(self.time_left()) + 60)
        if self.name == "websockets":
            return [py, "bench/peers/websockets_server.py", *common, "--max-seconds", budget]
        if self.name == "tornado":
            return [py, "bench/peers/tornado_server.py", *common, "--max-seconds", budget]
        if self.name == "node":
            return ["node", "bench/peers/node/server.js", *common, "--max-seconds", budget]
        raise ValueError(self.name)

    async def start(self) -> None:
        if self.name == "product":
            from bench.seed import seed

            self.say(f"seeding {self.mode.users} users + target + admin")
            self.seeded = await asyncio.to_thread(
                seed, os.path.join(self.tmp, "product-data"), SECRET, self.mode.users, TOKEN_TTL)
        self.server = Proc(self.name, _pinned(SERVER_CORE, self.server_argv()),
                           os.path.join(self.tmp, f"{self.name}.log"))
        await self.server.start()
        await self._wait_port()
        workers = [Worker(i, os.path.join(self.tmp, f"{self.name}-loadgen-{i}.log"),
                          self.time_left() + 60) for i in range(self.mode.workers)]
        for w in workers:
            await w.start()
        self.pool = Pool(workers)
        base = f"http://127.0.0.1:{self.port}"
        if self.name == "product":
            self.trigger = ProductTrigger(base, self.seeded.admin_token)
        else:
            self.trigger = PeerTrigger(f"ws://127.0.0.1:{self.port}/control")
        await self.trigger.open()

    async def _wait_port(self) -> None:
        for _ in range(200):
            if self.server.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.server.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port}")

    async def stop(self) -> None:
        if self.trigger is not None:
            with contextlib.suppress(Exception):
                await self.trigger.close()
        if self.pool is not None:
            for w in self.pool.workers:
                with contextlib.suppress(Exception):
                    await w.call({"cmd": "exit"}, 20)
                await w.stop()
        if self.server is not None:
            await self.server.stop()

    # -- measurements ------------------------------------------------------------------

    def cpu(self) -> float:
        return proc_cpu_seconds(self.server.pid)

    def rss(self) -> int:
        return proc_rss_kib(self.server.pid)

    async def _settle(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

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
        for _ in range(100000):
            with contextlib.suppress(OSError):
                samples.append([round(time.time() - began, 3), self.rss()])
            await asyncio.sleep(0.25)

    # -- workloads ---------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
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
        c = await self.pool.connect("127.0.0.1", self.port, tokens, rest, self.sources,
                                    offset=connected,
                                    timeout=max(30.0, min(180.0, self.time_left() - 60)))
        connected += c["ok"]
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
            "rss_base_kib": rss_base,
            "rss_idle_kib": rss_idle,
            "rss_kib_per_conn": (rss_idle - rss_base) / max(1, st["open"]),
            "idle_cpu_pct": 100 * idle_cpu,
            "auth": "JWT verify + user/session lookup" if self.name == "product" else "none",
        }
        self.result["workloads"]["W1"] = w1
        self.say(f"W1 {open_now} open, {w1['handshakes_per_s']:.0f} handshakes/s, "
                 f"{w1['rss_kib_per_conn']:.1f} KiB/conn, idle CPU {w1['idle_cpu_pct']:.1f}%, "
                 f"failed {c['failed']} {c['errors']}")
        if c["failed"] > 0.05 * rest:
            self.result["notes"].append(f"W1: {c['failed']} of {rest} connections failed")

        only_w3 = bool(os.environ.get("BENCH_ONLY_W3"))  # development: W1 + W3 only
        if not only_w3:
            await self._w2(m, st)
        if self.name == "product":
            await self._w3(m, st, few)
            if not only_w3:
                await self._w5(m)
        if not only_w3:
            await self._w4(m)
        return self.result

    async def _w2(self, m: Mode, st: dict[str, Any]) -> None:
        self.say(f"W2 {m.w2_broadcasts} broadcasts to {st['open']}")
        w2 = await self.broadcast_phase("w2", m.w2_broadcasts, 60.0)
        self.say(self._line(w2) + " (one alert in flight)")
        sat = await self.broadcast_phase("w2sat", m.w2_broadcasts, 60.0, window=4)
        self.say(self._line(sat) + " (4 alerts in flight)")
        w2["saturated"] = {k: v for k, v in sat.items() if k != "latency_quantiles"}
        self.result["workloads"]["W2"] = w2
        if self.profile and self.name == "product":
            await self.profile_w2()

    async def _w3(self, m: Mode, st: dict[str, Any], few: dict[str, Any]) -> None:
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
        self.say(f"W5 login storm ({m.w5_logins} concurrent) during {m.w5_broadcasts} broadcasts")
        w5 = await self.broadcast_phase("w5", m.w5_broadcasts, 60.0, during=self.login_storm)
        self.result["workloads"]["W5"] = w5
        self.say(self._line(w5) + f"; logins {w5['side']}")

    async def _w4(self, m: Mode) -> None:
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

    def _line(self, r: dict[str, Any]) -> str:
        lat = r["latency"]
        return (f"{r['broadcasts']} x {r['recipients_per_broadcast']}: "
                f"{r['msgs_per_s']:.0f} msgs/s, {r['cpu_us_per_msg']:.2f} us/msg, "
                f"p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms "
                f"max {lat['max_ms']:.1f} ms, "
                f"server core {100 * r['server_core_util']:.0f}%, "
                f"client core {100 * r['client_core_util']:.0f}%")

    def loop_cpu(self) -> float:
        """On-CPU seconds of the server's main thread (the IOLoop: HTTP, JWT, hub fan-out)."""
        pid = self.server.pid
        with open(f"/proc/{pid}/task/{pid}/schedstat", encoding="ascii") as fh:
            return parse_schedstat_ns(fh.read()) / 1e9

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

    def _spy(self, tag: str, seconds: int) -> subprocess.Popen | None:
        """Starts py-spy on the server (raw folded stacks into bench/results/), or None."""
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(spy):
            self.say("py-spy not found; no profile")
            return None
        out = os.path.join(ROOT, "bench", "results", f"profile-{tag}-{int(time.time())}.txt")
        self.say(f"profiling into {out}")
        return subprocess.Popen([spy, "record", "-p", str(self.server.pid), "-f", "raw",
                                 "-o", out, "-d", str(seconds), "-r", "500", "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def profile_w2(self) -> None:
        """py-spy record of the product during an extra broadcast run (not measured)."""
        spy = self._spy("w2", 12)
        if spy is None:
            return
        await asyncio.sleep(1.0)
        await self.broadcast_phase("profile", self.mode.w2_broadcasts, 10.0)
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait, 30)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, kernel and the versions of everything measured."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    info["cores"] = os.cpu_count()
    with contextlib.suppress(OSError):
        with open("/proc/meminfo", encoding="ascii") as fh:
            kib = int(fh.readline().split()[1])
            info["memory_gib"] = round(kib / 1024 / 1024, 1)
    import tornado

    info["tornado"] = tornado.version
    try:
        import websockets

        info["websockets"] = websockets.__version__
    except ImportError:
        info["websockets"] = None
    try:
        info["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["node"] = None
    lock = os.path.join(ROOT, "bench", "peers", "node", "package-lock.json")
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open(lock, encoding="utf-8") as fh:
            info["node_ws"] = json.load(fh)["packages"]["node_modules/ws"]["version"]
    try:
        import uvloop

        info["loadgen_loop"] = f"uvloop {uvloop.__version__}"
    except ImportError:
        info["loadgen_loop"] = "asyncio"
    return info


async def main_async(args: argparse.Namespace) -> int:
    mode = MODES["quick" if args.quick else "full"]
    clock = Clock()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {CLIENT_CORE})
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    servers = [s for s in (args.servers.split(",") if args.servers else SERVERS) if s]
    if "node" in servers and not shutil.which("node"):
        clock.say("node not found: skipping the Node ws peer")
        servers.remove("node")
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "schema": 1,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": mode.name,
        "config": {**asdict(mode), "connections": mode.connections,
                   "ping_interval_s": PING_INTERVAL, "server_core": SERVER_CORE,
                   "client_core": CLIENT_CORE, "nofile": NOFILE},
        "machine": machine_info(),
        "servers": {},
    }
    deadline_all = time.monotonic() + mode.budget_seconds
    tmp = tempfile.mkdtemp(prefix="bench-")
    clock.say(f"mode {mode.name}: {mode.connections} connections, servers {', '.join(servers)}; "
              f"logs in {tmp}")
    try:
        for i, name in enumerate(servers):
            left = deadline_all - time.monotonic()
            share = left / (len(servers) - i) if name != "product" else left * 0.4
            share = max(share, 30.0)
            bench = Bench(name, mode, tmp, clock, time.monotonic() + share, args.profile)
            try:
                results["servers"][name] = await bench.run()
            except Exception as exc:  # noqa: BLE001 - a failed server is reported, not fatal
                clock.say(f"{name}: FAILED {type(exc).__name__}: {exc}")
                res = bench.result
                res["error"] = f"{type(exc).__name__}: {exc}"
                results["servers"][name] = res
            finally:
                await bench.stop()
    finally:
        results["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        results["duration_s"] = round(clock.elapsed(), 1)
    results["targets"] = report.compute_targets(results)
    os.makedirs(args.results_dir, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(args.results_dir, f"{stamp}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
    clock.say(f"wrote {path}")
    print()
    print(report.text_table(results))
    print()
    print(report.targets_table_text(results))
    if not args.no_docs:
        md = report.write_docs(results, args.docs, args.img_dir, os.path.relpath(path, ROOT))
        clock.say(f"wrote {md}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the WebSocket benchmark suite.")
    parser.add_argument("--quick", action="store_true", help="small counts (about a minute)")
    parser.add_argument("--servers", default="",
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--profile", action="store_true",
                        help="also record a py-spy profile of the product during W2")
    parser.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--img-dir", default=os.path.join(ROOT, "docs", "img"))
    parser.add_argument("--no-docs", action="store_true", help="write only the JSON")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
