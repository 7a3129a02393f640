"""Peer: python-socketio's AsyncServer on aiohttp, serving the rooms workload.

A "join" event puts the socket in the named room (`enter_room`) and answers "joined"; a
"publish" event {room, ...} is emitted as "msg" to everyone in that room, the sender included
(`emit("msg", data, room=...)`). WebSocket transport only, no compression, the same ping
interval as the product under test. Exits by itself after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio
from aiohttp import web
from peer_cli import arguments, stop_event


def build(ping_interval: float,
          ping_timeout: float) -> tuple[socketio.AsyncServer, web.Application]:
    """Returns the Socket.IO server and the aiohttp app it is attached to."""
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"],
                               ping_interval=ping_interval, ping_timeout=ping_timeout,
                               http_compression=False, max_http_buffer_size=64 * 1024,
                               logger=False, engineio_logger=False)

    @sio.on("join")
    async def join(sid: str, room: Any) -> None:
        """Enters the room and tells the client it is in."""
        await sio.enter_room(sid, str(room))
        await sio.emit("joined", room, to=sid)

    @sio.on("publish")
    async def publish(sid: str, data: Any) -> None:
        """Emits the message to its room, the sender included."""
        if isinstance(data, dict) and "room" in data:
            await sio.emit("msg", data, room=str(data["room"]))

    app = web.Application()
    sio.attach(app)
    return sio, app


async def main(args: argparse.Namespace) -> None:
    """Serves until SIGTERM, SIGINT or --max-seconds."""
    _, app = build(args.ping_interval, args.ping_timeout)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port, backlog=1024)
    await site.start()
    stop = stop_event(args.max_seconds)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = arguments("python-socketio rooms peer")
    asyncio.run(main(parser.parse_args()))
