"""The soak's load-generator process (`python -m proof.soakload`, one of bench/procs.py's pool):
bench/loadgen's worker holding the soak's clients (proof/soakclient.py), and its background
loads: churn, room publishing and slow consumers.

Commands (one JSON line each, as bench/loadgen's): soak_connect, soak_churn, soak_churn_stop,
soak_publish, soak_publish_stop, soak_tick, soak_check, soak_release, and the loadgen's own
(stats, exit ...)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import sys
import time
from array import array
from typing import Any

from bench.loadgen.__main__ import Worker
from bench.loadgen.__main__ import main as loadgen_main
from bench.loadgen.client import Client, bounded, open_client
from bench.loadgen.storm import check_sequence
from proof.soakclient import FIRST_ID, SoakClient, SoakStats, interior_check

__all__ = ["SoakWorker", "main"]


class SoakWorker(Worker):
    """The loadgen worker with the soak's clients and background loads."""

    def __init__(self, max_seconds: float) -> None:
        super().__init__(max_seconds)
        self.stats = SoakStats()
        self.churning: collections.deque[SoakClient] = collections.deque()
        self.retired: list[array] = []  # the alert numbers of churn clients already gone
        self.churn: dict[str, Any] = {"opened": 0, "closed": 0, "errors": {}}
        self.tasks: dict[str, asyncio.Task] = {}
        self.arriving: set[asyncio.Task] = set()  # churn clients still connecting
        self.published = 0
        self.skipped = 0  # room messages not sent: the room's last one was unanswered

    async def open_one(self, cmd: dict[str, Any], token: str, source: str, kind: str,
                       room: str = "") -> SoakClient:
        """Opens one soak client from source."""
        host, port = cmd["host"], int(cmd["port"])
        request = Client.build_request(host, port, f"/ws?token={token}")
        client = await open_client(host, port, source, lambda ready: SoakClient(
            self.stats, request, ready, kind, room), 4096 if kind == "slow" else 0)
        return client  # type: ignore[return-value]

    async def connect_kind(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Opens one client per token, of cmd["kind"] (with cmd["rooms"][i] as client i's
        room); slow ones stop reading at once."""
        tokens, sources, kind = cmd["tokens"], cmd["sources"], cmd["kind"]
        rooms = cmd.get("rooms") or [""] * len(tokens)

        async def one(i: int) -> None:
            """Opens client i."""
            client = await self.open_one(cmd, tokens[i], sources[i % len(sources)], kind,
                                         rooms[i])
            if kind == "slow":
                client.transport.pause_reading()
                client.paused, client.record = True, False
            self.clients.append(client)

        stop_at = min(time.monotonic() + float(cmd.get("timeout", 60)), self.deadline)
        errors = await bounded(len(tokens), int(cmd.get("concurrency", 32)), stop_at, one)
        ok = len(tokens) - sum(errors.values())
        return {"ok": ok, "failed": len(tokens) - ok, "errors": errors}

    async def churn_loop(self, cmd: dict[str, Any]) -> None:
        """Opens a churn client every 1/rate seconds and closes the oldest once it has lived
        `lifetime` seconds, until stopped or the deadline."""
        rate, lifetime = float(cmd["rate"]), float(cmd["lifetime"])
        tokens, sources = cmd["tokens"], cmd["sources"]
        rng, began = random.Random(int(cmd.get("seed", 0))), time.monotonic()

        async def arrive(token: str, source: str) -> None:
            """Opens one churn client, counting the failure."""
            try:
                self.churning.append(await self.open_one(cmd, token, source, "churn"))
                self.churn["opened"] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                key = f"{type(exc).__name__}: {exc}"[:100]
                self.churn["errors"][key] = self.churn["errors"].get(key, 0) + 1

        for k in range(1, 1 << 30):
            await asyncio.sleep(max(0.0, began + k / rate - time.monotonic()))
            if time.monotonic() > self.deadline:
                return
            while self.churning and time.monotonic() - self.churning[0].born >= lifetime:
                self.retire(self.churning.popleft())
            task = asyncio.ensure_future(arrive(rng.choice(tokens), sources[k % len(sources)]))
            self.arriving.add(task)
            task.add_done_callback(self.arriving.discard)

    def retire(self, client: SoakClient) -> None:
        """Closes a churn client (every other one with a close frame, the rest by a reset) and
        keeps its alert numbers for the check."""
        client.leave(clean=self.churn["closed"] % 2 == 0)
        self.retired.append(client.feed)
        self.churn["closed"] += 1

    async def publish_loop(self, cmd: dict[str, Any]) -> None:
        """Publishes a numbered message into each of cmd["rooms"] every `interval` seconds
        (staggered), each from a random member of the room held by this process."""
        rooms, interval = cmd["rooms"], float(cmd["interval"])
        rng, began, stats = random.Random(int(cmd.get("seed", 0))), time.monotonic(), self.stats
        members = {room: [c for c in self.clients if c.room == room and c.kind == "room"]
                   for room in rooms}
        numbers = dict.fromkeys(rooms, 0)
        for k in range(1 << 30):
            await asyncio.sleep(max(0.0, began + k * interval / len(rooms) - time.monotonic()))
            if time.monotonic() > self.deadline:
                return
            room = rooms[k % len(rooms)]
            live = [c for c in members[room] if c.open and c.joined]
            if not live or room in stats.pending_rooms:
                # The room's last message is unanswered: sent from another member, this one
                # could be numbered first, so messages of a room go one at a time.
                self.skipped += 1
                continue
            self.published += 1
            request_id = FIRST_ID + self.published  # clear of the subscribe requests' ids
            stats.pending[request_id] = (room, numbers[room])
            stats.pending_rooms.add(room)
            rng.choice(live).send_text(json.dumps({
                "id": request_id, "type": "publish", "data": {
                    "channel": f"room:{room}", "data": {"seq": numbers[room], "at": time.time()}}},
                separators=(",", ":")).encode())
            numbers[room] += 1

    def start(self, name: str, loop: Any, cmd: dict[str, Any]) -> dict[str, Any]:
        """Starts a background load."""
        self.tasks[name] = asyncio.ensure_future(loop(cmd))
        return {"started": name}

    async def stop(self, name: str) -> None:
        """Stops a background load, raising what failed it."""
        task = self.tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def tick(self, path: str) -> dict[str, Any]:
        """Writes the latencies recorded since the last tick to path and returns the counters."""
        s = self.stats
        with open(path, "wb") as fh:
            s.latencies.tofile(fh)
        s.latencies = array("d")
        kinds = collections.Counter(c.kind for c in self.clients if c.open)
        kinds["churn"] = sum(1 for c in self.churning if c.open)
        return {"received": s.received, "open": dict(kinds), "dropped": dict(s.dropped),
                "close_codes": {str(k): v for k, v in s.close_codes.items()},
                "churn_opened": self.churn["opened"], "churn_closed": self.churn["closed"],
                "churn_failed": sum(self.churn["errors"].values()),
                "published": self.published, "refused": dict(s.refused),
                "acked": sum(len(v) for v in s.acked.values())}

    def check(self, alerts: list[int], rooms: dict[str, list[int]]) -> dict[str, Any]:
        """Checks every client's numbers against the acknowledged ones, summed by kind."""
        acked, by_room = sorted(set(alerts)), {r: set(v) for r, v in rooms.items()}
        acked_set = set(acked)
        out: dict[str, dict[str, int]] = {k: {"clients": 0, "closed": 0}
                                          for k in ("feed", "room", "churn")}

        def add(kind: str, counts: dict[str, int], prefix: str = "") -> None:
            """Adds one client's counts into its kind's totals."""
            for key, value in counts.items():
                out[kind][prefix + key] = out[kind].get(prefix + key, 0) + value
            if not prefix:
                out[kind]["clients"] += 1
                out[kind]["clients_with_gaps"] = (out[kind].get("clients_with_gaps", 0)
                                                  + bool(counts["gaps"]))

        for c in self.clients:
            if c.kind == "slow":
                continue
            add(c.kind, check_sequence(c.feed, acked_set))
            out[c.kind]["closed"] += not c.open
            if c.room:
                add(c.kind, check_sequence(c.numbers, by_room.get(c.room, set())), "room_")
        for feed in [*self.retired, *(c.feed for c in self.churning)]:
            add("churn", interior_check(feed, acked))
        return out

    async def release(self) -> dict[str, int]:
        """Lets the slow consumers read again; returns how many are still open a second later
        (the server should have closed every one)."""
        slow = [c for c in self.clients if c.kind == "slow"]
        for c in slow:
            if c.open and c.transport is not None:
                c.transport.resume_reading()
        await asyncio.sleep(1.0)
        return {"slow": len(slow), "slow_open": sum(1 for c in slow if c.open)}

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Runs a soak command, or one of the loadgen's."""
        op = str(cmd.get("cmd"))
        if op == "soak_connect":
            return await self.connect_kind(cmd)
        if op in ("soak_churn", "soak_publish"):
            loop = self.churn_loop if op == "soak_churn" else self.publish_loop
            return self.start(op, loop, cmd)
        if op == "soak_churn_stop":
            await self.stop("soak_churn")
            await asyncio.gather(*self.arriving)  # a client connecting now leaves with the rest
            while self.churning:
                self.retire(self.churning.popleft())
            return dict(self.churn)
        if op == "soak_publish_stop":
            await self.stop("soak_publish")
            for _ in range(50):  # the last replies are on their way
                if not self.stats.pending:
                    break
                await asyncio.sleep(0.1)
            return {"published": self.published, "skipped": self.skipped,
                    "acked": self.stats.acked,
                    "unanswered": len(self.stats.pending), "refused": self.stats.refused}
        if op == "soak_tick":
            return self.tick(cmd["path"])
        if op == "soak_check":
            return self.check(cmd["alerts"], cmd["rooms"])
        if op == "soak_release":
            return await self.release()
        return await super().handle(cmd)

    def close_all(self) -> dict[str, int]:
        """Stops the background loads and aborts every client, churn ones included."""
        for task in self.tasks.values():
            task.cancel()
        for client in self.churning:
            client.ours = True
            if client.open and client.transport is not None:
                client.transport.abort()
        return super().close_all()


def main(argv: list[str] | None = None) -> int:
    """Serves the orchestrator's commands (as bench/loadgen does) with a soak worker."""
    return loadgen_main(argv, SoakWorker)


if __name__ == "__main__":
    sys.exit(main())
