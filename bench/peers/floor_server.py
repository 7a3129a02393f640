"""Reference, not a server to run: the least Python does on this server's loop (uvloop when
installed). A bare handshake (the 101 and the welcome in one write, nothing checked but the
key) and a bare fan-out: /control fans each message (JSON text, protobuf bytes, a JSON list of
texts: a burst) to every /ws socket with one send() each in a plain loop, the rest via its
transport, and replies "ok <n>"; a close is answered, a ping ponged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re

from peer_cli import WELCOME, arguments, stop_event
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, apply_mask

KEY = re.compile(rb"\r\nsec-websocket-key:[ \t]*([^\r \t]+)", re.IGNORECASE)
SWITCHING = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Accept: ")
CLIENTS: dict[Floor, int] = {}  # each /ws connection and its socket's descriptor


def frame(opcode: int, payload: bytes) -> bytes:
    """Returns one unmasked final frame."""
    return Frame(Opcode(opcode), payload).serialize(mask=False)


WELCOME_FRAME = frame(1, WELCOME.encode())


def fan_out(data: bytes) -> None:
    """Writes data to every /ws connection: one send() each, the rest via its transport."""
    for client, fd in CLIENTS.items():
        transport = client.transport
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


class Floor(asyncio.Protocol):
    """One connection: the head, then the client's frames (control messages, pings, close)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf, self.upgraded, self.control = b"", False, False

    def connection_lost(self, exc: Exception | None) -> None:
        CLIENTS.pop(self, None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end + 4], self.buf[end + 4:]
            key = KEY.search(head)
            if key is None:
                self.transport.close()
                return
            accept = accept_key(key.group(1).decode("latin-1")).encode("ascii")
            self.upgraded, self.control = True, head.startswith(b"GET /control")
            self.transport.write(SWITCHING + accept + b"\r\n\r\n"
                                 + (b"" if self.control else WELCOME_FRAME))
            if not self.control:
                CLIENTS[self] = self.transport.get_extra_info("socket").fileno()
        while len(self.buf) >= 6:  # a client's frame: 2 bytes, length, 4 of mask, payload
            n, at = self.buf[1] & 0x7F, 2
            if n > 125:
                at = 4 if n == 126 else 10
                n = int.from_bytes(self.buf[2:at], "big")
            if len(self.buf) < at + 4 + n:
                return
            payload = apply_mask(self.buf[at + 4:at + 4 + n], self.buf[at:at + 4])
            opcode, self.buf = self.buf[0] & 0x0F, self.buf[at + 4 + n:]
            self.message(opcode, payload)

    def message(self, opcode: int, payload: bytes) -> None:
        """Answers a close or a ping; on /control, fans a message out and replies."""
        if opcode == 8:
            self.transport.write(frame(8, payload[:2]))
            self.transport.close()
        elif opcode == 9:
            self.transport.write(frame(10, payload))
        elif self.control and opcode in (1, 2):
            burst = opcode == 1 and payload.startswith(b"[")
            for one in json.loads(payload) if burst else [payload]:
                fan_out(frame(1, one.encode()) if burst else frame(opcode, one))
            self.transport.write(frame(1, f"ok {len(CLIENTS)}".encode()))


async def main(port: int, address: str, max_seconds: float) -> None:
    """Serves until SIGTERM, SIGINT or --max-seconds."""
    stop = stop_event(max_seconds)
    server = await asyncio.get_running_loop().create_server(Floor, address, port, backlog=1024)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    args = arguments("the floor: a bare handshake and a bare send() loop").parse_args()
    with contextlib.suppress(ImportError):
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args.port, args.address, args.max_seconds))
