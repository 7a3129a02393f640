"""The load-generator processes of one server's run, spoken to as one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from array import array
from typing import Any

from bench.modes import SOURCES
from bench.procs import Worker
from bench.stats import add_counts, proc_cpu_seconds

__all__ = ["Pool"]


class Pool:
    """All load-generator processes of one server's run."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    @classmethod
    async def start(cls, count: int, tmp: str, prefix: str, max_seconds: float) -> Pool:
        """Starts count load generators logging into tmp/<prefix>-loadgen-<i>.log."""
        workers = [Worker(i, os.path.join(tmp, f"{prefix}-loadgen-{i}.log"), max_seconds)
                   for i in range(count)]
        for w in workers:
            await w.start()
        return cls(workers)

    async def stop(self) -> None:
        """Stops every worker."""
        for w in self.workers:
            await w.stop()

    async def all(self, cmd: dict[str, Any], timeout: float = 120.0) -> list[dict[str, Any]]:
        """Sends one command to every worker and returns their replies."""
        return list(await asyncio.gather(*(w.call(cmd, timeout) for w in self.workers)))

    async def summed(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Sends one command to every worker and returns their replies added up."""
        out: dict[str, Any] = {}
        for reply in await self.all(cmd, timeout):
            add_counts(out, reply)
        return out

    async def stats(self) -> dict[str, Any]:
        """Returns the workers' receive counters summed into one dict."""
        merged: dict[str, Any] = {"last_recv": 0.0, "by_type": {}, "close_codes": {}}
        for r in await self.all({"cmd": "stats"}):
            for key in ("received", "wire_bytes", "other", "open", "open_recording", "lost"):
                merged[key] = merged.get(key, 0) + r[key]
            merged["last_recv"] = max(merged["last_recv"], r["last_recv"])
            add_counts(merged["by_type"], r["by_type"])
            add_counts(merged["close_codes"], r["close_codes"])
        return merged

    async def wait_received(self, expected: int, limit: float = 60.0,
                            stall: float = 3.0) -> dict[str, Any]:
        """Polls the counters until expected messages arrived, none arrived for stall seconds,
        or limit seconds passed; returns the last counters."""
        last, quiet_since = -1, time.monotonic()
        stop = quiet_since + limit
        while True:
            st = await self.stats()
            now = time.monotonic()
            if st["received"] >= expected or now > stop or now - quiet_since > stall:
                return st
            if st["received"] != last:
                last, quiet_since = st["received"], now
            await asyncio.sleep(0.1)

    async def latencies(self, tmp: str, tag: str) -> array:
        """Collects every worker's recorded latencies (seconds) through files in tmp."""
        values = array("d")
        paths = [os.path.join(tmp, f"lat-{tag}-{w.index}.bin") for w in self.workers]
        await asyncio.gather(*(w.call({"cmd": "dump", "path": p})
                               for w, p in zip(self.workers, paths, strict=True)))
        for path in paths:
            with open(path, "rb") as fh:
                values.fromfile(fh, os.path.getsize(path) // values.itemsize)
            os.unlink(path)
        return values

    def cpu_seconds(self) -> float:
        """Returns the CPU seconds the workers have used so far."""
        total = 0.0
        for w in self.workers:
            with contextlib.suppress(OSError):
                total += proc_cpu_seconds(w.pid)
        return total

    def shares(self, count: int, items: list[Any], offset: int = 0) -> list[tuple[Worker, list]]:
        """Splits count clients over the workers: each worker with its clients' items (client
        i takes items[(offset + i) % len(items)])."""
        n, out, start = len(self.workers), [], offset
        for i, w in enumerate(self.workers):
            k = count // n + (i < count % n)
            out.append((w, [items[(start + j) % len(items)] for j in range(k)]))
            start += k
        return [(w, part) for w, part in out if part]

    async def connect(self, port: int, tokens: list[str], count: int, offset: int = 0,
                      timeout: float = 120.0, path: str = "/ws", rooms: list[str] | None = None,
                      proto: str = "json", small_every: int = 50,
                      offers: dict[str, str] | None = None) -> dict[str, Any]:
        """Opens count connections spread over the workers; returns totals and wall time.

        With rooms (one per client, indexed like tokens) the clients are room clients that
        join their room speaking proto. `offers` may hold "extensions" and "protocol": the
        Sec-WebSocket-Extensions and -Protocol to offer.
        """
        indexes = list(range(max(len(tokens), len(rooms or ()))))
        calls = []
        for w, mine in self.shares(count, indexes, offset):
            cmd = {"cmd": "connect", "host": "127.0.0.1", "port": port, "path": path,
                   "tokens": [tokens[i % len(tokens)] for i in mine], "count": len(mine),
                   "sources": SOURCES, "concurrency": 32, "timeout": timeout,
                   "small_rcvbuf_every": small_every, **(offers or {})}
            if rooms:
                cmd.update(rooms=[rooms[i % len(rooms)] for i in mine], proto=proto)
            calls.append(w.call(cmd, timeout + 30))
        began = time.time()
        replies = await asyncio.gather(*calls)
        ok = sum(r["ok"] for r in replies)
        errors: dict[str, int] = {}
        for r in replies:
            add_counts(errors, r["errors"])
        return {"ok": ok, "failed": count - ok, "wall_s": time.time() - began, "errors": errors,
                "handshake_ms_mean": (sum(r["handshake_ms_sum"] for r in replies) / ok
                                      if ok else None)}
