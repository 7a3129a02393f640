"""The rooms workload against one server, this product or a Socket.IO peer: R1 members
publishing into their rooms, R2 (this product) a small room's cost beside many others."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.loadgen.rooms import SIO_PATH
from bench.phases import Phases

__all__ = ["RoomsBench", "ISO_ROOM"]

ISO_ROOM = "iso"


async def _read_until(conn: Any, kind: str) -> None:
    """Reads an R2 tab's frames until one of type kind; raises on an error."""
    while True:
        text = await asyncio.wait_for(conn.read_message(), 10)
        if text is None or '"type":"error"' in text:
            raise RuntimeError(f"R2 probe tab: {text!r:.200}")
        if f'"type":"{kind}"' in text:
            return


class RoomsBench(Phases):
    """Runs the rooms workload against one server and returns its results."""

    data_name = "rooms-data"

    async def run(self) -> dict[str, Any]:
        """Starts the server, connects the room clients and runs R1 (and R2 for this product)."""
        m, product, wl = self.mode, self.name == "product", self.result["workloads"]
        if product:  # an inbound limit the probe cannot hit
            self.extra_args = ("--inbound-rate", "1000", "--inbound-burst", "1000",
                               *self.extra_args)
        names = [f"r{i}" for i in range(m.rooms)]
        await self.start(trigger=False, rooms=(*names, ISO_ROOM))
        total, rooms = m.rooms * m.members, [room for room in names for _ in range(m.members)]
        connected, iso = 0, {}
        if product:
            connected = (await self.join(rooms, m.iso_few, 0))["ok"]
            await asyncio.sleep(1.0)
            self.say(f"R2 with {connected} bystanders: {m.iso_sends} publishes to a 3-tab room")
            iso.update(few=await self.probe(), bystanders_few=connected)
        self.say(f"R1 connecting {total - connected} clients into {m.rooms} rooms")
        c = await self.join(rooms, total - connected, connected)
        connected += c["ok"]
        wl["R1connect"] = {**c, "connections": connected, "connect_wall_s": c["wall_s"]}
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
            self.compare("R2", "publish", iso)
            wl["R2"] = iso
        return self.result

    async def join(self, rooms: list[str], count: int, offset: int) -> dict[str, Any]:
        """Opens count room clients, client i joining rooms[offset + i]."""
        product = self.name == "product"  # each member one user (a peer: no tokens)
        return await self.connect(
            count, offset, self.seeded.user_tokens if product else None, rooms=rooms,
            path="/ws" if product else SIO_PATH, proto="json" if product else "sio",
            small_rcvbuf_every=0)

    async def probe(self, rounds: int = 5) -> dict[str, Any]:
        """R2: one of three tabs publishes to the small room; CPU per publish."""
        from tornado.websocket import websocket_connect

        url = f"ws://127.0.0.1:{self.port}/ws?token={self.seeded.target_token}"
        channel, tabs, sent = f"room:{ISO_ROOM}", [], 0

        def send(tab: Any, verb: str, data: dict[str, Any]) -> None:
            """Sends one request frame."""
            tab.write_message(json.dumps({"id": sent + 1, "type": verb, "data": data}))

        async def one(*_: int) -> None:
            """Publishes one message and waits until every tab has it."""
            nonlocal sent
            send(tabs[0], "publish", {"channel": channel, "data": {"seq": sent}})
            sent += 1
            for tab in tabs:
                await _read_until(tab, "channel.message")

        try:
            for _ in range(3):
                tabs.append(await asyncio.wait_for(websocket_connect(url), 10))
                send(tabs[-1], "subscribe", {"channel": channel})
                await _read_until(tabs[-1], "reply")
            per_round = max(1, self.mode.iso_sends // rounds)
            out = await self.cpu_rounds("publish", rounds, per_round, one)
        finally:
            for tab in tabs:
                tab.close()
        return {"sends": per_round * rounds, "tabs": len(tabs), **out,
                "messages_at_tabs": [sent] * len(tabs)}  # each tab had each one

    async def publish_phase(self) -> dict[str, Any]:
        """Members publish at room_rate for room_seconds; measures what the receivers get."""
        m, pool = self.mode, self.pool
        members = (await pool.summed({"cmd": "rooms_members"})).get("members", {})
        await pool.all({"cmd": "reset"})
        seconds = min(m.room_seconds, max(3.0, self.time_left() - 20))
        mark = self.mark()
        sent = await pool.summed({"cmd": "rooms_publish", "rate": m.room_rate / len(pool.workers),
                                  "seconds": seconds, "seed": 7}, timeout=seconds + 60)
        sent_done, by_room = time.time(), sent.get("by_room", {})
        published = sum(by_room.values())
        expected = sum(n * members.get(room, 0) for room, n in by_room.items())  # its whole room
        st = await pool.wait_received(expected)
        out = await self.figures(mark, st, sent_done, "r1")
        n = len(members)
        return {"rooms": n, "members_per_room": sum(members.values()) / n if n else 0,
                "published": published, "publishes_per_room": published / n if n else 0,
                "publish_rate": published / (sent_done - mark[2]) if sent_done > mark[2] else None,
                "publish_seconds": seconds, "expected": expected, **out,
                "cpu_us_per_publish": (1e6 * out["server_cpu_s"] / published) if published
                else None, "other_frames": st["by_type"]}
