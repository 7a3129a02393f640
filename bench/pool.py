"""The load-generator processes of one server's run, spoken to as one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from array import array
from typing import Any

from bench.procs import Worker
from bench.stats import proc_cpu_seconds

__all__ = ["Pool"]


class Pool:
    """All load-generator processes of one server's run."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def all(self, cmd: dict[str, Any], timeout: float = 120.0) -> list[dict[str, Any]]:
        """Sends one command to every worker and returns their replies."""
        return list(await asyncio.gather(*(w.call(cmd, timeout) for w in self.workers)))

    async def stats(self) -> dict[str, Any]:
        """Returns the workers' receive counters summed into one dict."""
        replies = await self.all({"cmd": "stats"})
        merged: dict[str, Any] = {"received": 0, "wire_bytes": 0, "other": 0, "open": 0,
                                  "open_recording": 0,
                                  "lost": 0, "last_recv": 0.0, "by_type": {}, "close_codes": {}}
        for r in replies:
            for key in ("received", "wire_bytes", "other", "open", "open_recording", "lost"):
                merged[key] += r[key]
            merged["last_recv"] = max(merged["last_recv"], r["last_recv"])
            for key in ("by_type", "close_codes"):
                for k, v in r[key].items():
                    merged[key][k] = merged[key].get(k, 0) + v
        return merged

    async def latencies(self, tmp: str, tag: str) -> array:
        """Collects every worker's recorded latencies (seconds) through files in tmp."""
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
        """Returns the CPU seconds the workers have used so far."""
        total = 0.0
        for w in self.workers:
            with contextlib.suppress(OSError):
                total += proc_cpu_seconds(w.pid)
        return total

    async def connect(self, host: str, port: int, tokens: list[str], count: int,
                      sources: list[str], offset: int = 0, tag: str = "",
                      timeout: float = 120.0, path: str = "/ws", rooms: list[str] | None = None,
                      proto: str = "json", small_every: int = 50,
                      offers: dict[str, str] | None = None) -> dict[str, Any]:
        """Opens count connections spread over the workers; returns totals and wall time.

        With rooms (one per client, indexed like tokens) the clients are room clients that
        join their room speaking proto before they count as connected. `offers` may hold
        "extensions" and "protocol": the Sec-WebSocket-Extensions and -Protocol to offer.
        """
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
            cmd = {"cmd": "connect", "host": host, "port": port, "path": path, "tokens": toks,
                   "count": share, "sources": sources, "concurrency": 32, "timeout": timeout,
                   "tag": tag, "small_rcvbuf_every": small_every, **(offers or {})}
            if rooms:
                cmd.update(rooms=[rooms[(start + i) % len(rooms)] for i in range(share)],
                           proto=proto)
            start += share
            calls.append(w.call(cmd, timeout + 30))
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
