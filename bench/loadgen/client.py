"""The load generator's WebSocket client: a raw asyncio protocol whose frame parser reads the
send timestamp ("t": <unix seconds>) out of the payload without decoding JSON, bound to a
source address from 127.0.0.2 up so that 10k+ connections never run out of ports."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import zlib
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Stats", "Client", "SseClient", "open_client", "bounded"]

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
SENT = re.compile(rb'"t":([^,}]*)')  # a message's send time, found without decoding it
TYPE = re.compile(rb'"type":"([^"]*)"')
PONG_EMPTY = b"\x8a\x80\x00\x00\x00\x00"  # masked (zero key) empty pong
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # appended to a permessage-deflate message to inflate it


class Stats:
    """Counters shared by every client of this process."""

    def __init__(self) -> None:
        self.close_codes: dict[int, int] = {}
        self.lost = 0
        self.reset()

    def reset(self) -> None:
        """Zeroes the receive counters (not the closes and losses)."""
        self.latencies = array("d")
        self.received = 0  # data frames carrying a send timestamp
        self.wire_bytes = 0  # bytes on the wire (header + payload) of those frames
        self.other = 0  # other data frames (welcome, user.updated ...)
        self.by_type: dict[str, int] = {}
        self.last_recv = 0.0


class Client(asyncio.Protocol):
    """One WebSocket client: handshake, frames (binary like text, RSV1 ones inflated), pongs."""

    __slots__ = ("stats", "request", "transport", "buf", "upgraded", "ready", "open", "record",
                 "paused", "small", "inflater")
    OK_STATUS = b" 101 "  # in the status line of an accepted response head

    def __init__(self, stats: Stats, request: bytes, ready: asyncio.Future) -> None:
        self.stats, self.request, self.ready = stats, request, ready
        self.transport: Any = None
        self.buf = b""
        self.upgraded = self.open = self.paused = self.small = False
        self.record = True
        self.inflater: Any = None

    @staticmethod
    def build_request(host: str, port: int, target: str, headers: str = "") -> bytes:
        """Returns the upgrade request for target; headers are extra "Name: value\\r\\n" lines."""
        return (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"{headers}Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Sends the upgrade request."""
        self.transport, self.open = transport, True
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        """Counts the loss; fails a handshake still pending."""
        self.open = False
        self.stats.lost += 1
        self.fail(f"closed during handshake: {exc}")

    def fail(self, why: str) -> None:
        """Fails the connect (if still pending) and closes the connection."""
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why[:100]))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Reads the response head once (OK_STATUS, or the client fails), then the stream."""
        if self.buf:
            data, self.buf = self.buf + data, b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[:end].split(b"\r\n", 1)[0]
            if self.OK_STATUS not in status + b" ":
                self.fail(status.decode("latin-1"))
                return
            self.upgraded = True
            if b"permessage-deflate" in data[:end].lower():
                self.inflater = zlib.decompressobj(-15)
            self.on_upgraded()
            data = data[end + 4:]
        if data:
            self._frames(data)

    def on_upgraded(self) -> None:
        """Called once the server accepted the upgrade: the client is ready."""
        if not self.ready.done():
            self.ready.set_result(time.time())

    def on_text(self, buf: bytes, start: int, end: int) -> None:
        """Called for a text frame without a send timestamp: counts it by its "type"."""
        if kind := TYPE.search(buf, start, end):
            name = kind[1].decode("ascii", "replace")
            self.stats.by_type[name] = self.stats.by_type.get(name, 0) + 1

    def _frames(self, buf: bytes) -> None:
        """Parses every whole frame in buf and keeps the rest for the next read."""
        n, pos, stats, now = len(buf), 0, self.stats, 0.0
        while n - pos >= 2:
            b0, size, head = buf[pos], buf[pos + 1] & 0x7F, 2
            if size >= 126:
                head = 4 if size == 126 else 10
                if n - pos < head:
                    break
                size = int.from_bytes(buf[pos + 2:pos + head], "big")
            start = pos + head
            end = start + size
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                data, s, e = buf, start, end
                if b0 & 0x40 and self.inflater is not None:
                    data = self.inflater.decompress(buf[start:end] + DEFLATE_TAIL)
                    s, e = 0, len(data)
                if sent := SENT.search(data, s, e):
                    now = now or time.time()
                    stats.received += 1
                    stats.wire_bytes += end - pos
                    if self.record:
                        stats.latencies.append(now - float(sent[1]))
                    stats.last_recv = now
                else:
                    stats.other += 1
                    if data is buf and opcode == 1:
                        self.on_text(buf, start, end)
            elif opcode == 9:  # ping -> pong, masked with a zero key
                self.transport.write(PONG_EMPTY if size == 0 else bytes([0x8A, 0x80 | size])
                                     + b"\x00" * 4 + buf[start:end])
            elif opcode == 8:
                code = int.from_bytes(buf[start:start + 2], "big") if size >= 2 else 1005
                stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
                self.transport.close()
                return
            pos = end
        if pos < n:
            self.buf = buf[pos:]


class SseClient(Client):
    """One Server-Sent Events listener: each event counted and timed as a frame is."""

    __slots__ = ()
    OK_STATUS = b" 200 "

    @staticmethod
    def build_request(host: str, port: int, target: str, headers: str = "") -> bytes:
        """Returns the GET request of an SSE stream (headers are for WebSocket offers: unused)."""
        return (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: text/event-stream\r\n\r\n").encode()

    def _frames(self, data: bytes) -> None:
        """Counts every whole event in data and keeps the rest for the next read."""
        stats, pos, now = self.stats, 0, 0.0
        while True:
            end = data.find(b"\n\n", pos)
            if end < 0:
                break
            if sent := SENT.search(data, pos, end):
                now = now or time.time()
                stats.received += 1
                stats.wire_bytes += end + 2 - pos
                if self.record:
                    stats.latencies.append(now - float(sent[1]))
                stats.last_recv = now
            else:
                stats.other += 1
            pos = end + 2
        if pos < len(data):
            self.buf = data[pos:]


async def open_client(host: str, port: int, source: str,
                      make: Callable[[asyncio.Future], Client], rcvbuf: int = 0) -> Client:
    """Connects from source to host:port and returns make(ready)'s client once it is ready."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
        ready = loop.create_future()
        client = make(ready)
        await loop.create_connection(lambda: client, sock=sock)
        await asyncio.wait_for(ready, 15)
        return client
    except BaseException:
        sock.close()
        raise


async def bounded(count: int, concurrency: int, stop_at: float,
                  one: Callable[[int], Awaitable[None]]) -> dict[str, int]:
    """Runs one(i) for each i < count, concurrency at a time; returns the errors."""
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, int] = {}

    async def guarded(i: int) -> None:
        """Runs one(i), counting its failure."""
        async with sem:
            try:
                if time.monotonic() > stop_at:
                    raise TimeoutError("connect phase over")
                await one(i)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                key = f"{type(exc).__name__}: {exc}"[:100]
                errors[key] = errors.get(key, 0) + 1

    await asyncio.gather(*(guarded(i) for i in range(count)))
    return errors
