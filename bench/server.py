"""One server under test with its load generators: seeding, start, stop, its CPU and memory."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import modes
from bench.modes import Clock, Mode
from bench.procs import Pool, Proc, Worker
from bench.stats import full_collections, parse_schedstat_ns, proc_cpu_seconds, proc_rss_kib
from bench.triggers import PeerTrigger, ProductTrigger
from localcluster.procs import free_port

__all__ = ["PEERS", "BENCH_PASSWORD", "Seeded", "seed", "ServerRun", "guarded", "run_guarded"]

BENCH_PASSWORD = "bench-password-1"

_PY, _PEERS = sys.executable, "bench/peers/"
PEERS = {  # how each peer server starts (then the common options and --max-seconds)
    "websockets": [_PY, _PEERS + "websockets_server.py"],
    "tornado": [_PY, _PEERS + "tornado_server.py"],
    "node": ["node", _PEERS + "node/server.js"],
    "floor": [_PY, _PEERS + "floor_server.py"],
    "socketio": [_PY, _PEERS + "socketio_server.py"],
    "socketio-node": ["node", _PEERS + "node/socketio_server.js"],
}
# Where the servers' full garbage collections are counted from (bench/gcwatch).
_GCWATCH = os.path.join(modes.ROOT, "bench", "gcwatch")
_COMMON = ["--address", "127.0.0.1", "--ping-interval", str(modes.PING_INTERVAL),
           "--ping-timeout", str(modes.PING_TIMEOUT)]


@dataclass
class Seeded:
    """Tokens for the seeded accounts: one per bystander user, the target user and an admin."""

    user_tokens: list[str]
    user_emails: list[str]
    target_token: str
    target_id: int
    admin_token: str
    api_key: str = ""  # a server API key with every scope


def _insert(model: Any, rows: list[dict[str, Any]]) -> None:
    """Inserts rows in batches of 500."""
    for start in range(0, len(rows), 500):
        model.insert_many(rows[start:start + 500]).execute()


def seed(data_dir: str, users: int, database_url: str = "",
         rooms: list[str] | tuple[str, ...] = (), ttl: int = modes.TOKEN_TTL) -> Seeded:
    """Creates users, a target user, an admin and rooms (SQLite in data_dir, or database_url);
    the tokens live ttl seconds."""
    from auth.apikeys import SCOPES
    from auth.jwt import TokenIssuer
    from auth.passwords import hash_password
    from models.db import db, init_db
    from models.room import Room
    from models.token import Session
    from models.user import User
    from services.apikeys import create_key

    os.makedirs(data_dir, exist_ok=True)
    database = init_db(database_url or "sqlite:///" + os.path.join(data_dir, "app.db"))
    issuer = TokenIssuer(modes.SECRET, "events-server", "events-server", ttl, ttl)
    password_hash = hash_password(BENCH_PASSWORD)
    rows = [{"name": f"Bench User {i}", "email": f"bench{i}@example.com", "age": 30,
             "role": "user"} for i in range(users)]
    rows.append({"name": "Bench Target", "email": "target@example.com", "age": 30, "role": "user"})
    rows.append({"name": "Bench Admin", "email": "admin@example.com", "age": 40, "role": "admin"})
    with db.connection_context(), db.atomic():
        _insert(User, [{**r, "password_hash": password_hash} for r in rows])
        people = list(User.select(User.id, User.email, User.role, User.token_version)
                      .order_by(User.id))
        sessions = [{"id": str(uuid.uuid4()), "user": u.id} for u in people]
        _insert(Session, sessions)
        _insert(Room, [{"name": n, "title": f"Bench {n}", "private": False} for n in rooms])
        api_key = create_key("bench", list(SCOPES))["key"]
    database.close()
    tokens = [issuer.issue_access(u.id, u.role, u.token_version, s["id"])
              for u, s in zip(people, sessions, strict=True)]
    # The database is new: its users are in the rows' order, the target and the admin last.
    return Seeded(user_tokens=tokens[:users], user_emails=[u.email for u in people[:users]],
                  target_token=tokens[users], target_id=people[users].id,
                  admin_token=tokens[users + 1], api_key=api_key)


async def guarded(step: Awaitable[dict[str, Any]], label: str, clock: Clock) -> dict[str, Any]:
    """Returns step's result or, when it fails, {"error": why}: a failed step is not fatal."""
    try:
        return await step
    except Exception as exc:  # noqa: BLE001 - reported in the results
        clock.say(f"{label}: FAILED {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


class ServerRun:
    """One server under test with its load generators: start, stop and its CPU and memory."""

    data_name = "product-data"  # the product's data dir under the run's tmp dir
    core: int | str = modes.SERVER_CORE  # taskset's list: the server's core(s)

    def __init__(self, name: str, mode: Mode, tmp: str, clock: Clock, deadline: float,
                 profile: bool = False, extra_args: tuple[str, ...] = ()) -> None:
        self.name, self.mode, self.tmp, self.clock = name, mode, tmp, clock
        self.deadline, self.profile, self.extra_args = deadline, profile, extra_args
        # "product-asyncio" is this server on the stock asyncio loop, "product@REV" this server
        # as built at a git revision, run from its tree (paired rounds).
        self.product, self.root = name.startswith("product"), modes.ROOT
        data = self.data_name if name == "product" else f"{name}-data"
        self.port, self.data_dir = free_port(), os.path.join(tmp, data)
        self.gc_log = os.path.join(tmp, f"{name}-gc")  # bench/gcwatch's files: <this>.<pid>
        self.server: Proc | None = None
        self.pool: Pool | None = None
        self.trigger: ProductTrigger | PeerTrigger | None = None
        self.seeded: Seeded | None = None
        self.result: dict[str, Any] = {"workloads": {}, "notes": []}

    def say(self, text: str) -> None:
        """Prints a progress line prefixed with the server's name."""
        self.clock.say(f"{self.name}: {text}")

    def time_left(self) -> float:
        """Returns the seconds left before this server's deadline."""
        return self.deadline - time.monotonic()

    def tokens(self) -> list[str]:
        """Returns the tokens clients connect with: each seeded user's tabs, or any for a peer."""
        return [""] if self.seeded is None else [
            t for t in self.seeded.user_tokens for _ in range(self.mode.tabs)]

    async def start(self, users: int | None = None, trigger: bool = True,
                    rooms: tuple[str, ...] = ()) -> None:
        """Seeds the product's database, starts the server and workers, opens the trigger."""
        base = f"127.0.0.1:{self.port}"
        if self.product:
            users = self.mode.users if users is None else users
            self.say(f"seeding {users} users + target + admin, {len(rooms)} rooms")
            self.seeded = await asyncio.to_thread(seed, self.data_dir, users, "", rooms)
            self.trigger = ProductTrigger(f"http://{base}", self.seeded.admin_token,
                                          os.path.join(self.data_dir, "app.db"))
        else:
            self.trigger = PeerTrigger(f"ws://{base}/control")
        await self.launch()
        if trigger and isinstance(self.trigger, PeerTrigger):  # the product's sends are requests
            await self.trigger.open()

    async def launch(self, log: str = "") -> None:
        """Starts the server pinned to its core(s), then (once) the load generators."""
        loop = (("--loop", self.name.removeprefix("product-"))
                if self.name.startswith("product-") else ())
        argv = ([_PY, "main.py", "--data-dir", self.data_dir, "--jwt-secret", modes.SECRET,
                 "--rate-limits", "off", "--access-token-ttl", str(modes.TOKEN_TTL), *loop]
                if self.product else [*PEERS[self.name], "--max-seconds",
                                      str(int(self.time_left()) + 60)])
        argv += [*_COMMON, "--port", str(self.port), *self.extra_args]
        path = os.pathsep.join(filter(None, (_GCWATCH, os.environ.get("PYTHONPATH"))))
        self.server = Proc(self.name, argv, os.path.join(self.tmp, f"{self.name}{log}.log"),
                           self.core, cwd=self.root,
                           env={"PYTHONPATH": path, "BENCH_GC_LOG": self.gc_log})
        await self.server.start()
        await self.server.wait_port(self.port)
        if self.pool is None:
            self.pool = Pool([Worker(i, os.path.join(self.tmp, f"{self.name}-loadgen-{i}.log"),
                                     self.time_left() + 60) for i in range(self.mode.workers)])
            for w in self.pool.workers:
                await w.start()

    async def stop(self) -> None:
        """Closes the trigger and stops the load generators and the server."""
        if self.trigger is not None:
            await self.trigger.close()
        if self.pool is not None:
            await self.pool.stop()
        if self.server is not None:
            await self.server.stop()

    def cpu(self) -> float:
        """Returns the server's CPU seconds so far, with its workers' (those of `--workers`)."""
        pid = self.server.pid
        return sum(map(proc_cpu_seconds, (pid, *map(int, Path(
            f"/proc/{pid}/task/{pid}/children").read_text().split()))))

    def full_gcs(self) -> tuple[int, float]:
        """Returns the server's full garbage collections so far and their CPU seconds."""
        return full_collections(self.gc_log)

    def gc_since(self, before: tuple[int, float], units: int) -> dict[str, Any]:
        """The full collections since `before` (a full_gcs() reading) and their CPU per unit
        (handshake, delivery) in us: the `full_gcs` and `gc_us` of a measurement."""
        count, seconds = self.full_gcs()
        return {"full_gcs": count - before[0],
                "gc_us": 1e6 * (seconds - before[1]) / units if units else None}

    def rss(self) -> int:
        """Returns the server process's resident memory in KiB."""
        return proc_rss_kib(self.server.pid)

    def loop_cpu(self) -> float:
        """On-CPU seconds of the server's main thread (the IOLoop: HTTP, JWT, hub fan-out)."""
        pid = self.server.pid
        return parse_schedstat_ns(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text()) / 1e9

    def spy(self, tag: str, seconds: int) -> subprocess.Popen | None:
        """Starts py-spy on the server (raw folded stacks into bench/results/), or None."""
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(_PY), "py-spy")
        if not os.path.exists(spy):
            self.say("py-spy not found; no profile")
            return None
        out = os.path.join(modes.ROOT, "bench", "results", f"profile-{tag}-{int(time.time())}.txt")
        self.say(f"profiling into {out}")
        return subprocess.Popen([spy, "record", "-p", str(self.server.pid), "-f", "raw",
                                 "-o", out, "-d", str(seconds), "-r", "500", "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_guarded(bench: Any, label: str) -> dict[str, Any]:
    """Runs and stops bench; a failure is reported with what it had measured, not raised."""
    try:
        return {**bench.result, **await guarded(bench.run(), label, bench.clock)}
    finally:
        await bench.stop()
