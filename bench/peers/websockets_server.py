"""Peer: a `websockets` 17.x asyncio server fanning out with broadcast() (the floor, a bare
handshake and send() loop, is floor_server.py).

/ws accepts any token; /control fans each alert (JSON text, protobuf bytes, or a JSON list of
texts: a burst) out to every /ws connection and replies "ok <n>". permessage-deflate is off
unless --compression deflate (a context per connection)."""

from __future__ import annotations

import argparse
import asyncio
import json

from peer_cli import WELCOME, arguments, stop_event
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()  # the /ws connections


async def handle(ws: ServerConnection) -> None:
    """Serves /control (the harness: fans each message out with broadcast()) or /ws."""
    if ws.request is not None and ws.request.path.startswith("/control"):
        async for message in ws:
            burst = isinstance(message, str) and message.startswith("[")
            for one in json.loads(message) if burst else [message]:
                broadcast(CLIENTS, one)
            await ws.send(f"ok {len(CLIENTS)}")
        return
    await ws.send(WELCOME)
    CLIENTS.add(ws)
    try:
        await ws.wait_closed()
    finally:
        CLIENTS.discard(ws)


async def main(args: argparse.Namespace) -> None:
    """Serves until SIGTERM, SIGINT or --max-seconds."""
    stop = stop_event(args.max_seconds)
    async with serve(handle, args.address, args.port,
                     compression=None if args.compression == "none" else args.compression,
                     ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                     max_size=64 * 1024, backlog=1024):
        await stop.wait()


if __name__ == "__main__":
    cli = arguments("websockets broadcast() peer")
    cli.add_argument("--compression", choices=("none", "deflate"), default="none")
    asyncio.run(main(cli.parse_args()))
