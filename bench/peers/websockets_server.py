"""Peer: a `websockets` 17.x asyncio server fanning out with broadcast(); with --floor, the
raw send() floor (a reference: each frame written to every socket in a bare loop).

/ws accepts any token; /control fans each alert (JSON text, protobuf bytes, or a JSON list of
texts: a burst) out to every /ws connection and replies "ok <n>". permessage-deflate is off
unless --compression deflate (a context per connection)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
from collections.abc import Callable

from peer_cli import WELCOME, arguments, stop_event
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.frames import Frame, Opcode

# Each /ws connection's transport and its socket's descriptor (asyncio does not hand out the
# transport's own socket object for sending).
CLIENTS: dict[ServerConnection, tuple[asyncio.Transport, int]] = {}


def frame(message: str | bytes) -> bytes:
    """Returns one unmasked final frame: text for str, binary for bytes."""
    if isinstance(message, str):
        return Frame(Opcode.TEXT, message.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, message).serialize(mask=False)


def floor(message: str | bytes) -> None:
    """Writes the message to every connection: one send() each, the rest via its transport."""
    data = frame(message)
    for transport, fd in CLIENTS.values():
        if transport.get_write_buffer_size():  # earlier bytes still queued: keep the order
            transport.write(data)
            continue
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            continue
        if sent < len(data):
            transport.write(data[sent:])


async def handle(fan_out: Callable[[str | bytes], None], ws: ServerConnection) -> None:
    """Serves /control (the harness: fans each message out with fan_out) or /ws (a client)."""
    if ws.request is not None and ws.request.path.startswith("/control"):
        async for message in ws:
            burst = isinstance(message, str) and message.startswith("[")
            for one in json.loads(message) if burst else [message]:
                fan_out(one)
            await ws.send(f"ok {len(CLIENTS)}")
        return
    await ws.send(WELCOME)
    CLIENTS[ws] = (ws.transport, ws.transport.get_extra_info("socket").fileno())
    try:
        await ws.wait_closed()
    finally:
        CLIENTS.pop(ws, None)


async def main(args: argparse.Namespace) -> None:
    """Serves until SIGTERM, SIGINT or --max-seconds."""
    stop = stop_event(args.max_seconds)
    fan_out = floor if args.floor else (lambda message: broadcast(CLIENTS, message))
    async with serve(functools.partial(handle, fan_out), args.address, args.port,
                     compression=None if args.compression == "none" else args.compression,
                     ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                     max_size=64 * 1024, backlog=1024):
        await stop.wait()


if __name__ == "__main__":
    cli = arguments("websockets broadcast() peer, or the raw send() floor")
    cli.add_argument("--compression", choices=("none", "deflate"), default="none")
    cli.add_argument("--floor", action="store_true", help="the raw send() floor")
    asyncio.run(main(cli.parse_args()))
