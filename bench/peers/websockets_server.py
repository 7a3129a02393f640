"""Peer: a `websockets` 17.x asyncio server that fans out with websockets.broadcast().

/ws?token=... accepts any token (no auth) and sends one welcome frame; /control receives the
alert from the harness (JSON text, or protobuf bytes that go out as binary frames), broadcasts it
to every /ws connection and replies "ok <n>" (a JSON list of alert texts is a burst: each is
broadcast in turn, in one loop iteration). permessage-deflate is off (compression=None), like
the product's default, unless --compression deflate (websockets' own default settings: each
connection compresses with its own context); pings use the same interval as the product under
test. Exits by itself after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from peer_cli import arguments, stop_event
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()
WELCOME = json.dumps({"type": "connection.established",
                      "data": {"message": "Welcome to WebSocket real-time updates"},
                      "timestamp": "1970-01-01T00:00:00.000Z"})


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path.startswith("/control"):
        async for message in ws:
            if isinstance(message, str) and message.startswith("["):  # a burst, in a row
                for text in json.loads(message):
                    broadcast(CLIENTS, text)
            else:
                broadcast(CLIENTS, message)
            await ws.send(f"ok {len(CLIENTS)}")
        return
    CLIENTS.add(ws)
    try:
        await ws.send(WELCOME)
        await ws.wait_closed()
    finally:
        CLIENTS.discard(ws)


async def main(args: argparse.Namespace) -> None:
    stop = stop_event(args.max_seconds)
    compression = None if args.compression == "none" else args.compression
    async with serve(handler, args.address, args.port, compression=compression,
                     ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                     max_size=64 * 1024, backlog=1024):
        await stop.wait()


if __name__ == "__main__":
    parser = arguments("websockets broadcast() peer")
    parser.add_argument("--compression", choices=("none", "deflate"), default="none")
    asyncio.run(main(parser.parse_args()))
