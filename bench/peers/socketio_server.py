"""Peer: python-socketio's AsyncServer on aiohttp, serving the rooms workload ("join" answered
"joined", "publish" emitted as "msg" to its room). WebSocket transport only, no compression."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio
from aiohttp import web
from peer_cli import arguments, stop_event


async def main(args: argparse.Namespace) -> None:
    """Serves until SIGTERM, SIGINT or --max-seconds."""
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"],
                               ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.address, args.port, backlog=1024).start()
    await stop_event(args.max_seconds).wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(arguments("python-socketio rooms peer").parse_args()))
