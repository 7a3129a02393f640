"""`--workers N`: N processes on one port as one Redis cluster, under a supervising parent. A
killed worker is started again and its clients resume on a sibling with no gap; SIGTERM drains
every worker; /ws/stats and /metrics answer for all of them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest
from cluster import need_redis
from conftest import TEST_SECRET
from serverproc import ROOT, call, free_port, http_get, wait_for
from test_cluster_proxy import Listener
from tornado.httpclient import AsyncHTTPClient

ADMIN = {"email": "boss@example.com", "password": "adminpass1"}


class Workers:
    """The parent process of `main.py --workers=N` and its port."""

    def __init__(self, tmp_path, count: int = 2) -> None:
        self.port = free_port()
        self.data = str(tmp_path / "data")
        self.env = {**os.environ, "JWT_SECRET": TEST_SECRET}
        result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "create-admin",
                                 f"--email={ADMIN['email']}", f"--password={ADMIN['password']}",
                                 f"--data-dir={self.data}"], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        self.log = open(tmp_path / "workers.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "main.py"), f"--port={self.port}",
             f"--data-dir={self.data}", f"--workers={count}", "--broker=redis",
             f"--redis-url={need_redis()}", f"--redis-prefix=t{uuid.uuid4().hex[:12]}",
             "--rate-limits=off"], cwd=ROOT, env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    def health(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return http_get(s).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


async def nodes(port: int, token: str, count: int, clients: int | None = None,
                timeout: float = 30.0) -> list[dict]:
    """Waits until /ws/stats lists count live workers (holding `clients` sockets between
    them, when given); returns their entries."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, stats = await call(port, "GET", "/ws/stats", token=token)
        found = [n for n in (stats or {}).get("nodes", []) if "worker" in n]
        if status == 200 and len(found) == count and (
                clients is None or sum(n["total_clients"] for n in found) == clients):
            return found
        assert loop.time() < deadline, f"workers never reached {count}: {stats}"
        await asyncio.sleep(0.2)


def test_workers_need_the_redis_broker(tmp_path):
    """--workers without --broker=redis is refused in one line with status 2."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--workers=2",
                             f"--data-dir={tmp_path}"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "JWT_SECRET": TEST_SECRET})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--broker=redis" in result.stderr


@pytest.mark.gen_test(timeout=180)
async def test_a_killed_worker_is_replaced_and_its_clients_resume_without_a_gap(tmp_path):
    """Clients spread over two workers; one worker is SIGKILLed while numbered broadcasts
    flow: it is started again, its clients resume on a worker with every number once, and
    /metrics labels every sample with its worker."""
    workers = Workers(tmp_path)
    try:
        assert wait_for(workers.health, 60), "the workers did not start"
        status, body = await call(workers.port, "POST", "/api/v1/auth/login", ADMIN)
        admin = body["data"]["access_token"]
        before = await nodes(workers.port, admin, 2)
        listeners = [Listener(f"ws://127.0.0.1:{workers.port}/ws", admin) for _ in range(12)]
        tasks = [asyncio.ensure_future(x.run()) for x in listeners]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not all(x.position for x in listeners):
            assert loop.time() < deadline
            await asyncio.sleep(0.1)
        stats = await nodes(workers.port, admin, 2, clients=12)
        assert all(n["total_clients"] > 0 for n in stats), "SO_REUSEPORT spread nothing"
        sent = []
        for n in range(60):
            if n == 20:
                os.kill(before[0]["pid"], signal.SIGKILL)
            try:  # a request the killed worker had accepted is reset: not acknowledged
                code, _ = await call(workers.port, "POST", "/ws/broadcast",
                                     {"message": "numbered", "metadata": {"seq": n}}, admin)
            except OSError:
                code = 0
            if code == 200:
                sent.append(n)
            await asyncio.sleep(0.02)
        deadline = loop.time() + 30
        while not all(x.seq.seen and x.seq.seen[-1] >= sent[-1] for x in listeners):
            assert loop.time() < deadline, [x.seq.seen[-3:] for x in listeners]
            await asyncio.sleep(0.1)
        for x in listeners:
            x.running = False
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(1 for x in listeners if x.node_lost) > 0
        for x in listeners:
            assert set(sent) <= set(x.seq.seen), sorted(set(sent) - set(x.seq.seen))[:5]
            assert x.seq.not_recovered == 0
        deadline = loop.time() + 30  # the dead worker's entry expires; its successor's comes
        while {n["pid"] for n in await nodes(workers.port, admin, 2)} == {
                n["pid"] for n in before}:
            assert loop.time() < deadline, "the killed worker was not replaced"
            await asyncio.sleep(0.5)
        response = await AsyncHTTPClient().fetch(f"{workers.base}/metrics")
        text = response.body.decode()
        assert 'worker="1"' in text and 'worker="2"' in text
    finally:
        assert workers.stop() == 0


@pytest.mark.gen_test(timeout=120)
async def test_sigterm_drains_every_worker(tmp_path):
    """SIGTERM to the parent: every client of every worker is closed with 1001, the parent
    exits 0 and no worker is left."""
    from tornado.websocket import websocket_connect

    workers = Workers(tmp_path)
    try:
        assert wait_for(workers.health, 60), "the workers did not start"
        status, body = await call(workers.port, "POST", "/api/v1/auth/login", ADMIN)
        admin = body["data"]["access_token"]
        stats = await nodes(workers.port, admin, 2)
        pids = [n["pid"] for n in stats]
        conns = [await websocket_connect(f"ws://127.0.0.1:{workers.port}/ws?token={admin}")
                 for _ in range(10)]
        for conn in conns:
            await conn.read_message()
        workers.proc.send_signal(signal.SIGTERM)
        for conn in conns:
            while await conn.read_message() is not None:
                pass
            assert conn.close_code == 1001
    finally:
        code = workers.stop()
    assert code == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.gen_test(timeout=120)
async def test_workers_do_not_outlive_a_killed_parent(tmp_path):
    """A SIGKILLed parent takes its workers with it (they get SIGTERM and drain)."""
    workers = Workers(tmp_path)
    try:
        assert wait_for(workers.health, 60), "the workers did not start"
        status, body = await call(workers.port, "POST", "/api/v1/auth/login", ADMIN)
        pids = [n["pid"] for n in await nodes(workers.port, body["data"]["access_token"], 2)]
        workers.proc.kill()

        def gone() -> bool:
            for pid in pids:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                return False
            return True
        assert wait_for(gone, 30), "a worker outlived its parent"
    finally:
        workers.stop()
