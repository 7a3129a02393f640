"""The rooms workload against one server, this product or a Socket.IO peer.

R1: rooms x members sockets, each in one room; for `room_seconds` the load generators publish
at `room_rate` per second in total, each from a random member, and every receiver times each
message. R2 (this product only): the server's CPU per publish to a small room (3 tabs of one
user) with few and then with every other socket connected in other rooms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from bench.loadgen.rooms import SIO_PATH
from bench.phases import Phases
from bench.stats import add_counts

__all__ = ["RoomsBench", "room_names", "expected_deliveries", "ISO_ROOM"]

ISO_ROOM = "iso"


def room_names(count: int) -> list[str]:
    """Returns the workload's room names."""
    return [f"r{i}" for i in range(count)]


def expected_deliveries(by_room: dict[str, int], members: dict[str, int]) -> int:
    """Returns how many messages the receivers should get: each publish reaches its room."""
    return sum(n * members.get(room, 0) for room, n in by_room.items())


class Tab:
    """One R2 probe connection (a tornado client in the orchestrator): counts the room
    messages and replies it gets."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.messages = self.replies = 0
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    def on_message(self, text: str | bytes | None) -> None:
        """Counts one frame (tornado calls this for each, None on close)."""
        if text is None:
            self.errors.append("closed")
        elif '"type":"channel.message"' in text:
            self.messages += 1
        elif '"type":"reply"' in text:
            self.replies += 1
        elif '"type":"error"' in text:
            self.errors.append(str(text)[:200])
        self.changed.set()

    async def until(self, ok: Callable[[], bool], timeout: float = 10.0) -> None:
        """Waits until ok() holds; raises on a server error or after timeout."""
        stop = time.monotonic() + timeout
        while not ok():
            if self.errors:
                raise RuntimeError(f"probe tab: {self.errors[0]}")
            if time.monotonic() > stop:
                raise TimeoutError("probe tab waited too long")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.01, stop - time.monotonic()))
            except TimeoutError:
                continue

    def send(self, verb: str, data: dict[str, Any], request_id: int) -> None:
        """Sends one request frame."""
        self.conn.write_message(json.dumps({"id": request_id, "type": verb, "data": data},
                                           separators=(",", ":")))


class RoomsBench(Phases):
    """Runs the rooms workload against one server and returns its results."""

    data_name = "rooms-data"

    async def run(self) -> dict[str, Any]:
        """Starts the server, connects the room clients and runs R1 (and R2 for this product)."""
        m, product, wl = self.mode, self.name == "product", self.result["workloads"]
        if product:  # an inbound limit the probe cannot hit
            self.extra_args = ("--inbound-rate", "1000", "--inbound-burst", "1000")
        await self.start(trigger=False, rooms=(*room_names(m.rooms), ISO_ROOM))
        total = m.rooms * m.members
        rooms = [room for room in room_names(m.rooms) for _ in range(m.members)]
        connected, iso = 0, {}
        if product:
            connected = (await self.join(rooms, m.iso_few, 0))["ok"]
            await asyncio.sleep(1.0)
            self.say(f"R2 with {connected} bystanders: {m.iso_sends} publishes to a 3-tab room")
            iso.update(few=await self.probe(), bystanders_few=connected)
        self.say(f"R1 connecting {total - connected} clients into {m.rooms} rooms")
        c = await self.join(rooms, total - connected, connected)
        connected += c["ok"]
        wl["R1connect"] = {"connections": connected, "failed": c["failed"],
                           "errors": c["errors"], "connect_wall_s": c["wall_s"],
                           "handshake_ms_mean": c["handshake_ms_mean"]}
        self.say(f"R1 {connected} joined, failed {c['failed']} {c['errors']}")
        if c["failed"] > 0.05 * total:
            self.result["notes"].append(f"R1: {c['failed']} of {total} clients failed to join")
        await asyncio.sleep(3.0)
        r1 = wl["R1"] = await self.publish_phase()
        lat = r1["latency"]
        self.say(f"R1 {r1['published']} publishes -> {r1['delivered']}/{r1['expected']} "
                 f"deliveries, {r1['msgs_per_s']:.0f} msgs/s, {r1['cpu_us_per_msg']:.2f} us "
                 f"per delivery, p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms")
        if product:
            await asyncio.sleep(2.0)
            self.say(f"R2 with {connected} bystanders: {m.iso_sends} publishes")
            iso.update(many=await self.probe(), bystanders_many=connected)
            few, many = iso["few"], iso["many"]
            iso["ratio"] = many["loop_cpu_us_per_publish"] / few["loop_cpu_us_per_publish"]
            iso["ratio_process"] = many["cpu_us_per_publish"] / few["cpu_us_per_publish"]
            wl["R2"] = iso
            self.say(f"R2 per publish: loop {few['loop_cpu_us_per_publish']:.0f} -> "
                     f"{many['loop_cpu_us_per_publish']:.0f} us (ratio {iso['ratio']:.2f}); "
                     f"process {iso['ratio_process']:.2f}x")
        return self.result

    async def join(self, rooms: list[str], count: int, offset: int) -> dict[str, Any]:
        """Opens count room clients, client i joining rooms[offset + i]."""
        product = self.name == "product"
        return await self.pool.connect(
            self.port, self.seeded.user_tokens if product else [""], count, offset=offset,
            timeout=max(30.0, min(180.0, self.time_left() - 60)),
            path="/ws" if product else SIO_PATH, rooms=rooms, proto="json" if product else "sio",
            small_every=0)

    async def probe(self, rounds: int = 5) -> dict[str, Any]:
        """R2: three tabs of the target user in the small room; the first publishes, each
        message once all three have the one before; server CPU per publish in rounds."""
        from tornado.websocket import websocket_connect

        url = f"ws://127.0.0.1:{self.port}/ws?token={self.seeded.target_token}"
        channel, tabs, seq = f"room:{ISO_ROOM}", [Tab() for _ in range(3)], 0
        try:
            for tab in tabs:
                tab.conn = await asyncio.wait_for(
                    websocket_connect(url, on_message_callback=tab.on_message), 10)
                tab.send("subscribe", {"channel": channel}, 1)
                await tab.until(lambda t=tab: t.replies >= 1)

            async def one(*_: int) -> None:
                """Publishes one message and waits until every tab has it."""
                nonlocal seq
                seq += 1
                tabs[0].send("publish", {"channel": channel, "data": {"seq": seq}}, seq + 1)
                for tab in tabs:
                    await tab.until(lambda t=tab: t.messages >= seq)

            for _ in range(5):  # warm-up
                await one()
            await asyncio.sleep(0.3)
            per_round = max(1, self.mode.iso_sends // rounds)
            out = await self.cpu_rounds("publish", rounds, per_round, one)
            await tabs[0].until(lambda: tabs[0].replies >= seq + 1)
        finally:
            for tab in tabs:
                if tab.conn is not None:
                    tab.conn.close()
        return {"sends": per_round * rounds, "tabs": len(tabs), **out,
                "messages_at_tabs": [t.messages for t in tabs]}

    async def publish_phase(self) -> dict[str, Any]:
        """Members publish at room_rate for room_seconds; measures what the receivers get."""
        m, pool = self.mode, self.pool
        members: dict[str, int] = {}
        for r in await pool.all({"cmd": "rooms_members"}):
            add_counts(members, r["members"])
        await pool.all({"cmd": "reset"})
        seconds = min(m.room_seconds, max(3.0, self.time_left() - 20))
        mark = self.mark()
        replies = await pool.all({"cmd": "rooms_publish", "rate": m.room_rate / len(pool.workers),
                                  "seconds": seconds, "seed": 7}, timeout=seconds + 60)
        sent_done = time.time()
        by_room: dict[str, int] = {}
        for r in replies:
            add_counts(by_room, r["by_room"])
        published, expected = sum(by_room.values()), expected_deliveries(by_room, members)
        st = await pool.wait_received(expected)
        out = await self.figures(mark, st, sent_done, "r1")
        n = len(members)
        return {"rooms": n, "members_per_room": sum(members.values()) / n if n else 0,
                "published": published, "publishes_per_room": published / n if n else 0,
                "publish_rate": published / (sent_done - mark[2]) if sent_done > mark[2] else None,
                "publish_seconds": seconds, "expected": expected, **out,
                "cpu_us_per_publish": (1e6 * out["server_cpu_s"] / published) if published
                else None, "other_frames": st["by_type"]}
