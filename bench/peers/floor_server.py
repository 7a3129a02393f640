"""Reference: the raw-send floor of a Python fan-out, not a server anyone would deploy.

The `websockets` peer's handshakes (any token, one welcome frame, the same ping interval), but
a broadcast is the least a Python process can do: the frame is built once and written to each
connection's socket (`os.write` on its descriptor) in a bare loop, with no per-connection
state, checks, accounting or slow-consumer handling (a socket whose buffer is full gets the
rest through its transport). What a delivery costs here is nearly all the kernel's loopback
TCP work, so a server's CPU per delivery next to this row shows how much of its own is left to
cut. Exits by itself after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct

from peer_cli import arguments, stop_event
from websockets.asyncio.server import ServerConnection, serve

# Each /ws connection's transport and its socket's descriptor (asyncio does not hand out the
# transport's own socket object for sending).
CLIENTS: dict[ServerConnection, tuple[asyncio.Transport, int]] = {}
WELCOME = json.dumps({"type": "connection.established",
                      "data": {"message": "Welcome to WebSocket real-time updates"},
                      "timestamp": "1970-01-01T00:00:00.000Z"})


def frame(message: str | bytes) -> bytes:
    """Returns one unmasked final frame: text for str, binary for bytes."""
    payload = message.encode() if isinstance(message, str) else message
    opcode = 0x81 if isinstance(message, str) else 0x82
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", opcode, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", opcode, 126, n) + payload
    return struct.pack("!BBQ", opcode, 127, n) + payload


def fan_out(message: str | bytes) -> None:
    """Writes the message to every connection: one send() each, the rest via its transport."""
    data = frame(message)
    size = len(data)
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
        if sent < size:
            transport.write(data[sent:])


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path.startswith("/control"):
        async for message in ws:
            if isinstance(message, str) and message.startswith("["):  # a burst, in a row
                for text in json.loads(message):
                    fan_out(text)
            else:
                fan_out(message)
            await ws.send(f"ok {len(CLIENTS)}")
        return
    await ws.send(WELCOME)
    transport = ws.transport
    CLIENTS[ws] = (transport, transport.get_extra_info("socket").fileno())
    try:
        await ws.wait_closed()
    finally:
        CLIENTS.pop(ws, None)


async def main(args: argparse.Namespace) -> None:
    stop = stop_event(args.max_seconds)
    async with serve(handler, args.address, args.port, compression=None,
                     ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                     max_size=64 * 1024, backlog=1024):
        await stop.wait()


if __name__ == "__main__":
    parser = arguments("raw send() floor reference")
    asyncio.run(main(parser.parse_args()))
