"""One load-generator process: holds thousands of WebSocket clients and measures what arrives.

Started by bench/run.py under `taskset -c 1` with RLIMIT_NOFILE 20000, it takes JSON-line
commands on stdin and answers each with one JSON line on stdout. The clients are raw asyncio
protocols (no library): a hand-written upgrade request, then a minimal frame parser that counts
text frames and reads the send timestamp ("t": <unix seconds>) out of the payload without
decoding JSON, so the client side stays cheap. Each connection binds a source address from
127.0.0.2 upwards before connecting (IP_BIND_ADDRESS_NO_PORT lets the kernel share ports
across destinations), so 10k+ connections never run out of ephemeral ports.

Commands: connect, stats, reset, dump, pause, resume, close_all, exit, rooms_publish and
rooms_members for the room clients of bench/roomclient.py, and storm_* for the reconnect-storm
clients of bench/stormclient.py. The process exits by itself on
stdin EOF (parent gone), on `exit`, or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
import zlib
from array import array
from typing import Any

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
MARK = b'"t":'
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PONG_EMPTY = b"\x8a\x80\x00\x00\x00\x00"  # masked (zero key) empty pong
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # appended to a permessage-deflate message to inflate it


class Stats:
    """Counters shared by every client of this process."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.received = 0  # text frames carrying a send timestamp
        self.wire_bytes = 0  # bytes on the wire (header + payload) of those frames
        self.other = 0  # other text frames (welcome, user.updated ...)
        self.by_type: dict[str, int] = {}
        self.first_recv = 0.0
        self.last_recv = 0.0
        self.close_codes: dict[int, int] = {}
        self.lost = 0

    def reset(self) -> None:
        self.latencies = array("d")
        self.received = 0
        self.wire_bytes = 0
        self.other = 0
        self.by_type = {}
        self.first_recv = 0.0
        self.last_recv = 0.0


class Client(asyncio.Protocol):
    """One WebSocket client: handshake, frame parsing, pong replies; never sends data frames.

    Text and binary frames count alike (the events.v1.protobuf subprotocol sends binary ones,
    whose alert metadata is embedded JSON text); a frame with RSV1 set is inflated first when
    the server agreed to permessage-deflate (one inflater per connection, which also serves a
    server that keeps its compression context between messages).
    """

    __slots__ = ("stats", "request", "transport", "buf", "upgraded", "ready", "open",
                 "record", "paused", "tag", "small", "inflater")

    def __init__(self, stats: Stats, request: bytes, ready: asyncio.Future, tag: str) -> None:
        self.stats = stats
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.ready = ready
        self.open = False
        self.record = True
        self.paused = False
        self.tag = tag
        self.small = False
        self.inflater: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.stats.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed during handshake: {exc}"))

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[:end].split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status.decode("latin-1")[:80]))
                self.transport.close()
                return
            self.upgraded = True
            if b"permessage-deflate" in data[:end].lower():
                self.inflater = zlib.decompressobj(-15)
            self.on_upgraded()
            data = data[end + 4:]
            if not data:
                return
        self._frames(data)

    def on_upgraded(self) -> None:
        """Called once the server accepted the upgrade: the client is ready."""
        if not self.ready.done():
            self.ready.set_result(time.time())

    def on_text(self, buf: bytes, start: int, end: int) -> None:
        """Called for a text frame without a send timestamp: counts it by its "type"."""
        t = buf.find(b'"type":"', start, end)
        if t >= 0:
            q = buf.find(b'"', t + 8, end)
            name = buf[t + 8:q].decode("ascii", "replace")
            self.stats.by_type[name] = self.stats.by_type.get(name, 0) + 1

    def _frames(self, buf: bytes) -> None:
        n = len(buf)
        pos = 0
        stats = self.stats
        now = 0.0
        while n - pos >= 2:
            b0 = buf[pos]
            size = buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if n - pos < 4:
                    break
                size = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif size == 127:
                if n - pos < 10:
                    break
                size = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            start = pos + head
            end = start + size
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                data, s, e = buf, start, end
                if b0 & 0x40 and self.inflater is not None:
                    data = self.inflater.decompress(buf[start:end] + DEFLATE_TAIL)
                    s, e = 0, len(data)
                i = data.find(MARK, s, e)
                if i >= 0:
                    if not now:
                        now = time.time()
                    j = i + 4
                    k = j
                    while k < e and data[k] not in b",}":
                        k += 1
                    stats.received += 1
                    stats.wire_bytes += end - pos
                    if self.record:
                        stats.latencies.append(now - float(data[j:k]))
                    if not stats.first_recv:
                        stats.first_recv = now
                    stats.last_recv = now
                elif data is buf and opcode == 1:
                    stats.other += 1
                    self.on_text(buf, start, end)
                else:
                    stats.other += 1
            elif opcode == 9:  # ping -> pong (empty payloads only; servers here send those)
                if size == 0:
                    self.transport.write(PONG_EMPTY)
                else:
                    payload = buf[start:end]
                    self.transport.write(bytes([0x8A, 0x80 | size]) + b"\x00" * 4 + payload)
            elif opcode == 8:
                code = int.from_bytes(buf[start:start + 2], "big") if size >= 2 else 1005
                stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
                self.transport.close()
                return
            pos = end
        if pos < n:
            self.buf = buf[pos:]


class Worker:
    """Owns the clients of this process and answers the orchestrator's commands."""

    def __init__(self, max_seconds: float) -> None:
        self.stats = Stats()
        self.clients: list[Client] = []
        self.deadline = time.monotonic() + max_seconds

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        host, port, path = cmd["host"], int(cmd["port"]), cmd.get("path", "/ws")
        tokens = cmd.get("tokens") or [""]
        count = int(cmd["count"])
        sources = cmd.get("sources") or ["127.0.0.2"]
        concurrency = int(cmd.get("concurrency", 64))
        timeout = float(cmd.get("timeout", 60))
        tag = cmd.get("tag", "")
        # Optional offers: a permessage-deflate extension and a subprotocol (bench/wire.py).
        offers = "".join(f"{name}: {cmd[key]}\r\n" for key, name in (
            ("extensions", "Sec-WebSocket-Extensions"), ("protocol", "Sec-WebSocket-Protocol"))
            if cmd.get(key))
        # Clients that W4 may pause get a small receive buffer, so their backlog piles up in
        # the server (where its limits apply) rather than in the kernel.
        small_every = int(cmd.get("small_rcvbuf_every", 0))
        rooms = cmd.get("rooms")  # one room per client: a RoomClient speaking cmd["proto"]
        if rooms:
            from bench.roomclient import RoomClient
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}
        ok = 0
        handshake_times = array("d")
        stop_at = min(time.monotonic() + timeout, self.deadline)

        async def one(i: int) -> None:
            nonlocal ok
            async with sem:
                if time.monotonic() > stop_at:
                    errors["timeout"] = errors.get("timeout", 0) + 1
                    return
                token = tokens[i % len(tokens)]
                target = f"{path}?token={token}" if token else path
                request = (
                    f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{offers}"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    sock.bind((sources[i % len(sources)], 0))
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    small = bool(small_every) and i % small_every == small_every - 1
                    if small:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    began = time.time()
                    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
                    ready = loop.create_future()
                    if rooms:
                        client = RoomClient(self.stats, request, ready, tag,
                                            cmd.get("proto", "json"), rooms[i % len(rooms)])
                    else:
                        client = Client(self.stats, request, ready, tag)
                    client.small = small
                    await loop.create_connection(lambda: client, sock=sock)
                    await asyncio.wait_for(ready, 15)
                    handshake_times.append(time.time() - began)
                    self.clients.append(client)
                    ok += 1
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    key = f"{type(exc).__name__}: {exc}"[:100]
                    errors[key] = errors.get(key, 0) + 1
                    try:
                        sock.close()
                    except OSError:
                        pass

        began = time.time()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.time() - began
        return {"ok": ok, "failed": count - ok, "elapsed": elapsed, "errors": errors,
                "handshake_ms_sum": 1000.0 * sum(handshake_times)}

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "received": s.received,
            "wire_bytes": s.wire_bytes,
            "other": s.other,
            "by_type": s.by_type,
            "first_recv": s.first_recv,
            "last_recv": s.last_recv,
            "open": sum(1 for c in self.clients if c.open),
            "open_recording": sum(1 for c in self.clients if c.open and c.record),
            "close_codes": {str(k): v for k, v in s.close_codes.items()},
            "lost": s.lost,
            "latency_samples": len(s.latencies),
        }

    def pause(self, every: int) -> int:
        """Stops reading on the small-buffer clients (else every every-th open client); they
        stop counting latency for good."""
        paused = 0
        chosen = [c for c in self.clients if c.small] or self.clients[every - 1::every]
        for client in chosen:
            if client.open and client.transport is not None:
                client.transport.pause_reading()
                client.paused = True
                client.record = False
                paused += 1
        return paused

    def resume(self) -> int:
        resumed = 0
        for client in self.clients:
            if client.paused and client.open and client.transport is not None:
                client.transport.resume_reading()
                resumed += 1
            client.paused = False
        return resumed

    def close_all(self) -> int:
        closed = 0
        for client in self.clients:
            if client.open and client.transport is not None:
                client.transport.abort()
                closed += 1
        self.clients = []
        return closed

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("cmd")
        if op == "connect":
            return await self.connect(cmd)
        if op == "stats":
            return self.snapshot()
        if op == "reset":
            self.stats.reset()
            return {"reset": True}
        if op == "dump":
            with open(cmd["path"], "wb") as fh:
                self.stats.latencies.tofile(fh)
            return {"dumped": len(self.stats.latencies)}
        if op == "pause":
            return {"paused": self.pause(int(cmd.get("every", 50)))}
        if op == "resume":
            return {"resumed": self.resume()}
        if op == "close_all":
            return {"closed": self.close_all()}
        if isinstance(op, str) and op.startswith("storm_"):
            from bench.stormclient import handle_storm

            return await handle_storm(self, cmd)
        if op in ("rooms_publish", "rooms_members"):
            from bench.roomclient import rooms_members, rooms_publish

            return await rooms_publish(self, cmd) if op == "rooms_publish" else rooms_members(self)
        if op == "exit":
            return {"exit": True}
        return {"error": f"unknown command {op!r}"}


async def main_async(max_seconds: float) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker(max_seconds)
    out = sys.stdout
    while True:
        remaining = worker.deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = await asyncio.wait_for(reader.readline(), remaining)
        except TimeoutError:
            break
        if not line:
            break  # parent gone
        cmd = json.loads(line)
        try:
            reply = await worker.handle(cmd)
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = cmd.get("id")
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if cmd.get("cmd") == "exit":
            break
    if getattr(worker, "storm", None) is not None:
        worker.storm.stop()
    worker.close_all()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="exit after this long whatever happens (default 900)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    args = parser.parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main_async(args.max_seconds))
    return asyncio.run(main_async(args.max_seconds))


if __name__ == "__main__":
    sys.exit(main())
