"""Storm clients of the load generator: feed clients that resume with since/epoch after a cut
and check what they got (frames scanned with bytes.find, only the welcome decoded)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from array import array
from typing import Any

from bench.loadgen.client import Client, Stats, bounded, open_client
from bench.stats import add_counts

__all__ = ["StormState", "StormClient", "Storm", "check_sequence", "parse_int_after",
           "handle_storm"]

WELCOME, SEQ, OFFSET = b'"type":"connection.established"', b'"seq":', b'"offset":"'


def parse_int_after(buf: bytes, mark: bytes, start: int, end: int) -> int | None:
    """Returns the decimal integer right after mark in buf[start:end], or None."""
    i = buf.find(mark, start, end)
    if i < 0:
        return None
    j = k = i + len(mark)
    while k < end and 48 <= buf[k] <= 57:
        k += 1
    return int(buf[j:k]) if k > j else None


def check_sequence(seqs: list[int] | array, acked: set[int]) -> dict[str, int]:
    """Checks one client's numbers against the acknowledged publishes: gaps, duplicates, and
    numbers not above the one before (a refused publish may arrive once or not at all)."""
    got = set(seqs)
    disorder = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
    return {"gaps": len(acked - got), "duplicates": len(seqs) - len(got),
            "out_of_order": disorder, "received": len(seqs)}


class StormState:
    """What one storm client remembers across its connections."""

    __slots__ = ("token", "source", "seqs", "epoch", "offset", "pending", "recovered",
                 "not_recovered", "missed", "replayed", "recovered_at", "resumed_at",
                 "attempts", "conn", "resuming")

    def __init__(self, token: str, source: str) -> None:
        self.token, self.source = token, source
        self.seqs = array("i")
        self.epoch = ""
        self.offset: int | None = None
        self.pending = 0  # replayed events still expected after a recovered welcome
        self.recovered = self.not_recovered = self.missed = self.replayed = self.attempts = 0
        self.recovered_at = 0.0  # when the last resume's replay was complete
        self.resumed_at = 0.0  # when the last resume's welcome arrived
        self.conn: Client | None = None
        self.resuming = False

    def target(self, path: str = "/ws") -> str:
        """Returns the request target: with since/epoch when a position is known."""
        if self.resuming and self.epoch and self.offset is not None:
            return f"{path}?token={self.token}&since={self.offset}&epoch={self.epoch}"
        return f"{path}?token={self.token}"

    def on_welcome(self, data: dict[str, Any], now: float) -> None:
        """Takes the feed position and, on a resume, the recovery outcome."""
        self.epoch = str(data.get("epoch", ""))
        recovered, missed = bool(data.get("recovered")), int(data.get("missed") or 0)
        if self.resuming:
            self.resumed_at = now
            if recovered:
                self.recovered += 1
                self.missed += missed
                self.pending = missed
                if not missed:
                    self.recovered_at = now
            else:
                self.not_recovered += 1
        if not (recovered and missed):
            self.offset = int(data.get("offset") or 0)

    def on_logged(self, offset: int, seq: int | None, now: float) -> None:
        """Advances the position by one logged event; records its number if it has one."""
        self.offset = offset
        if seq is not None:
            self.seqs.append(seq)
        if self.pending:
            self.pending -= 1
            self.replayed += 1
            if not self.pending:
                self.recovered_at = now


class StormClient(Client):
    """One connection of a storm client."""

    __slots__ = ("state", "storm")

    def __init__(self, stats: Stats, request: bytes, ready: asyncio.Future, state: StormState,
                 storm: Storm | None = None) -> None:
        super().__init__(stats, request, ready)
        self.state, self.storm = state, storm

    def connection_lost(self, exc: Exception | None) -> None:
        """Counts the loss; an upgraded connection's client then resumes."""
        super().connection_lost(exc)
        if self.upgraded and self.storm is not None:
            self.storm.lost(self.state)

    def on_text(self, buf: bytes, start: int, end: int) -> None:
        """Handles the welcome and logged feed events; counts frames by type."""
        super().on_text(buf, start, end)
        now = time.time()
        if buf.find(WELCOME, start, end) >= 0:
            self.state.on_welcome(json.loads(buf[start:end])["data"], now)
            return
        offset = parse_int_after(buf, OFFSET, start, end)
        if offset is not None:
            self.state.on_logged(offset, parse_int_after(buf, SEQ, start, end), now)


class Storm:
    """The storm clients of one load-generator process and their reconnect loop."""

    def __init__(self, worker: Any, cmd: dict[str, Any]) -> None:
        self.worker, self.host, self.port = worker, cmd["host"], int(cmd["port"])
        self.rng = random.Random(int(cmd.get("seed", 0)) ^ os.getpid())
        sources = cmd.get("sources") or ["127.0.0.2"]
        self.states = [StormState(t, sources[i % len(sources)])
                       for i, t in enumerate(cmd["tokens"])]
        self.reconnect = True
        self.tasks: set[asyncio.Task] = set()

    async def open(self, state: StormState) -> None:
        """Opens one connection for state (resuming when it has a position)."""
        request = Client.build_request(self.host, self.port, state.target())
        state.conn = await open_client(self.host, self.port, state.source, lambda ready: (
            StormClient(self.worker.stats, request, ready, state, self)))

    def lost(self, state: StormState) -> None:
        """Schedules a resume for a client whose socket dropped."""
        if self.reconnect and time.monotonic() < self.worker.deadline:
            task = asyncio.ensure_future(self.resume(state))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def resume(self, state: StormState) -> None:
        """Reconnects with full-jitter backoff (0.2 s doubling, capped at 2 s), 40 attempts."""
        state.resuming = True
        for attempt in range(40):
            await asyncio.sleep(self.rng.uniform(0, min(2.0, 0.2 * 2 ** attempt)))
            if not self.reconnect or time.monotonic() > self.worker.deadline:
                return
            state.attempts += 1
            try:
                await self.open(state)
                return
            except Exception:  # noqa: BLE001 - refused while the server restarts: retry
                continue

    async def connect(self, concurrency: int, timeout: float) -> dict[str, Any]:
        """Opens every client's first connection; returns the counts."""
        errors = await bounded(len(self.states), concurrency, time.monotonic() + timeout,
                               lambda i: self.open(self.states[i]))
        ok = sum(1 for s in self.states if s.conn is not None)
        return {"ok": ok, "failed": len(self.states) - ok, "errors": errors}

    def status(self, cut: float) -> dict[str, Any]:
        """Returns how many clients have resumed since cut, recovered or not."""
        done = [s for s in self.states if s.resumed_at >= cut]
        return {"clients": len(self.states),
                "open": sum(1 for s in self.states if s.conn is not None and s.conn.open),
                "recovered": sum(1 for s in done if s.recovered_at >= cut and not s.pending),
                "not_recovered": sum(1 for s in done if s.not_recovered), "resumed": len(done)}

    def check(self, acked: set[int], cut: float) -> dict[str, Any]:
        """Returns every client's sequence check and recovery figures, summed."""
        kept = ("recovered", "not_recovered", "missed", "replayed", "attempts")
        out: dict[str, Any] = {"clients": len(self.states), "never_connected": 0, **dict.fromkeys(
            ("gaps", "duplicates", "out_of_order", "received", "clients_with_gaps",
             "clients_with_duplicates", *kept), 0), "recovery_s": [], "resumed_at": []}
        for s in self.states:
            if not s.epoch:
                out["never_connected"] += 1
                continue
            c = check_sequence(s.seqs, acked)
            add_counts(out, {**c, "clients_with_gaps": bool(c["gaps"]),
                             "clients_with_duplicates": bool(c["duplicates"] or c["out_of_order"]),
                             **{k: getattr(s, k) for k in kept}})
            if s.recovered_at >= cut and not s.pending:
                out["recovery_s"].append(round(s.recovered_at - cut, 4))
            if s.resumed_at >= cut:
                out["resumed_at"].append(round(s.resumed_at - cut, 4))
        return out

    def stop(self) -> int:
        """Stops reconnecting and closes every connection."""
        self.reconnect = False
        for t in list(self.tasks):
            t.cancel()
        conns = [s.conn for s in self.states if s.conn is not None and s.conn.open]
        for conn in conns:
            conn.transport.abort()
        return len(conns)


async def handle_storm(worker: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    """Runs one storm_* command of the load generator."""
    op, storm = cmd["cmd"], worker.storm
    if op == "storm_connect":
        worker.storm = Storm(worker, cmd)
        return await worker.storm.connect(int(cmd.get("concurrency", 32)),
                                          float(cmd.get("timeout", 60)))
    if storm is None:
        return {"error": "no storm clients"}
    if op == "storm_status":
        return storm.status(float(cmd.get("cut", 0)))
    if op == "storm_check":
        return storm.check(set(cmd["acked"]), float(cmd["cut"]))
    return {"closed": storm.stop()} if op == "storm_stop" else {"error": f"unknown {op!r}"}
