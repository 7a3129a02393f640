"""The rooms workload (R1, R2) against one server: this product or a Socket.IO peer.

R1: rooms x members sockets, each in one room (this server: `subscribe` over /ws with a real
JWT; peers: a Socket.IO "join"); for `room_seconds` the load generators publish at
`room_rate` per second in total, each publish from a random member, and every receiver
times each message from the send time in its body. Server CPU is the process's own
accounting over the phase. R2 (this product only): server CPU per publish to a small room
with few and then with every other socket connected in other rooms (bench/roomprobe.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from bench import sio
from bench.modes import PING_INTERVAL, PING_TIMEOUT, SECRET, TOKEN_TTL
from bench.roomprobe import ISO_ROOM, probe
from bench.server import ServerRun
from bench.stats import proc_runtime_seconds, quantile_points, summarize_latencies

__all__ = ["RoomsBench", "room_names", "expected_deliveries"]


def room_names(count: int) -> list[str]:
    """Returns the workload's room names."""
    return [f"r{i}" for i in range(count)]


def expected_deliveries(by_room: dict[str, int], members: dict[str, int]) -> int:
    """Returns how many messages the receivers should get: each publish reaches its room."""
    return sum(n * members.get(room, 0) for room, n in by_room.items())


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    """Returns the counts of several dicts added up per key."""
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


class RoomsBench(ServerRun):
    """Runs the rooms workload against one server and returns its results."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_dir = os.path.join(self.tmp, "rooms-data")

    def server_argv(self) -> list[str]:
        """This product with a per-connection inbound limit the probe cannot hit; the peers."""
        common = ["--address", "127.0.0.1", "--port", str(self.port),
                  "--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT),
                  "--max-seconds", str(int(self.time_left()) + 60)]
        if self.name == "product":
            return [*super().server_argv(), "--inbound-rate", "1000", "--inbound-burst", "1000"]
        if self.name == "socketio":
            return [sys.executable, "bench/peers/socketio_server.py", *common]
        if self.name == "socketio-node":
            return ["node", "bench/peers/node/socketio_server.js", *common]
        raise ValueError(self.name)

    async def start(self) -> None:
        """Seeds users and rooms (this product), then starts the server and load generators."""
        if self.name == "product":
            from bench.seed import seed, seed_rooms

            m = self.mode
            self.say(f"seeding {m.users} users and {m.rooms + 1} rooms")
            self.seeded = await asyncio.to_thread(seed, self.data_dir, SECRET, m.users,
                                                  TOKEN_TTL)
            await asyncio.to_thread(seed_rooms, self.data_dir,
                                    [*room_names(m.rooms), ISO_ROOM])
        await self.launch()

    async def _connect(self, rooms: list[str], count: int, offset: int) -> dict[str, Any]:
        """Opens count room clients, client i joining rooms[offset + i]."""
        product = self.name == "product"
        tokens = self.seeded.user_tokens if product else [""]
        toks = [tokens[i % len(tokens)] for i in range(len(rooms))]
        return await self.pool.connect(
            "127.0.0.1", self.port, toks, count, self.sources, offset=offset,
            timeout=max(30.0, min(180.0, self.time_left() - 60)),
            path="/ws" if product else sio.PATH, rooms=rooms,
            proto="json" if product else "sio", small_every=0)

    async def run(self) -> dict[str, Any]:
        """Starts the server, connects the room clients and runs R1 (and R2 for this product)."""
        m = self.mode
        await self.start()
        product = self.name == "product"
        total = m.rooms * m.members
        rooms = [room for room in room_names(m.rooms) for _ in range(m.members)]
        connected = 0
        iso: dict[str, Any] = {}
        if product:
            c = await self._connect(rooms, m.iso_few, 0)
            connected = c["ok"]
            await self._settle(1.0)
            self.say(f"R2 with {connected} bystanders: {m.iso_sends} publishes to a 3-tab room")
            iso["few"] = await self._probe()
            iso["bystanders_few"] = connected
        self.say(f"R1 connecting {total - connected} clients into {m.rooms} rooms")
        c = await self._connect(rooms, total - connected, connected)
        connected += c["ok"]
        self.result["workloads"]["R1connect"] = {
            "connections": connected, "failed": c["failed"], "errors": c["errors"],
            "connect_wall_s": c["wall_s"], "handshake_ms_mean": c["handshake_ms_mean"]}
        self.say(f"R1 {connected} joined, failed {c['failed']} {c['errors']}")
        if c["failed"] > 0.05 * total:
            self.result["notes"].append(f"R1: {c['failed']} of {total} clients failed to join")
        await self._settle(3.0)
        r1 = await self.publish_phase()
        self.result["workloads"]["R1"] = r1
        lat = r1["latency"]
        self.say(f"R1 {r1['published']} publishes -> {r1['delivered']}/{r1['expected']} "
                 f"deliveries, {r1['msgs_per_s']:.0f} msgs/s, {r1['cpu_us_per_msg']:.2f} us "
                 f"per delivery, p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms, server "
                 f"core {100 * r1['server_core_util']:.0f}%, "
                 f"client core {100 * r1['client_core_util']:.0f}%")
        if product:
            await self._settle(2.0)
            self.say(f"R2 with {connected} bystanders: {m.iso_sends} publishes")
            iso["many"] = await self._probe()
            iso["bystanders_many"] = connected
            iso["ratio"] = iso["many"]["loop_cpu_us_per_publish"] / iso["few"][
                "loop_cpu_us_per_publish"]
            iso["ratio_process"] = iso["many"]["cpu_us_per_publish"] / iso["few"][
                "cpu_us_per_publish"]
            self.result["workloads"]["R2"] = iso
            self.say(f"R2 per publish: loop {iso['few']['loop_cpu_us_per_publish']:.0f} -> "
                     f"{iso['many']['loop_cpu_us_per_publish']:.0f} us (ratio "
                     f"{iso['ratio']:.2f}); process {iso['ratio_process']:.2f}x")
        return self.result

    async def _probe(self) -> dict[str, Any]:
        """Runs the small-room probe as the seeded target user."""
        url = f"ws://127.0.0.1:{self.port}/ws?token={self.seeded.target_token}"
        pid = self.server.pid
        return await probe(url, self.mode.iso_sends, lambda: proc_runtime_seconds(pid),
                           self.loop_cpu)

    async def publish_phase(self) -> dict[str, Any]:
        """Members publish at room_rate for room_seconds; measures what the receivers get."""
        m, pool = self.mode, self.pool
        members = _merge([r["members"] for r in await pool.all({"cmd": "rooms_members"})])
        await pool.all({"cmd": "reset"})
        seconds = min(m.room_seconds, max(3.0, self.time_left() - 20))
        cpu0, ccpu0 = self.cpu(), pool.cpu_seconds() + time.process_time()
        began = time.time()
        replies = await pool.all({"cmd": "rooms_publish", "rate": m.room_rate / len(pool.workers),
                                  "seconds": seconds, "seed": 7}, timeout=seconds + 60)
        sent_done = time.time()
        by_room = _merge([r["by_room"] for r in replies])
        published = sum(by_room.values())
        expected = expected_deliveries(by_room, members)
        last, still = -1, 0
        for _ in range(600):  # drain: until everything arrived or 3 s without progress
            st = await pool.stats()
            if st["received"] >= expected or (st["received"] == last and still >= 30):
                break
            still = still + 1 if st["received"] == last else 0
            last = st["received"]
            await asyncio.sleep(0.1)
        st = await pool.stats()
        cpu1, ccpu1 = self.cpu(), pool.cpu_seconds() + time.process_time()
        wall = max(st["last_recv"], sent_done) - began
        lat = await pool.latencies(self.tmp, f"{self.name}-r1")
        delivered = st["received"]
        return {
            "rooms": len(members),
            "members_per_room": (sum(members.values()) / len(members)) if members else 0,
            "published": published,
            "publishes_per_room": published / len(members) if members else 0,
            "publish_rate": published / (sent_done - began) if sent_done > began else None,
            "publish_seconds": seconds,
            "delivered": delivered,
            "expected": expected,
            "wall_s": wall,
            "msgs_per_s": delivered / wall if wall > 0 else None,
            "server_cpu_s": cpu1 - cpu0,
            "cpu_us_per_msg": (1e6 * (cpu1 - cpu0) / delivered) if delivered else None,
            "cpu_us_per_publish": (1e6 * (cpu1 - cpu0) / published) if published else None,
            "server_core_util": (cpu1 - cpu0) / wall if wall > 0 else None,
            "client_core_util": (ccpu1 - ccpu0) / wall if wall > 0 else None,
            "latency": summarize_latencies(lat),
            "latency_quantiles": quantile_points(lat, 101),
            "other_frames": st["by_type"],
        }
