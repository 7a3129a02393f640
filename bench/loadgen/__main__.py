"""One load-generator process: holds thousands of clients and answers each JSON-line command on
stdin with a JSON line; exits on stdin EOF (parent gone), on `exit`, or after --max-seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loadgen.client import Client, SseClient, Stats, bounded, open_client
from bench.loadgen.rooms import RoomClient, handle_rooms
from bench.loadgen.storm import Storm, handle_storm

__all__ = ["Worker", "main"]


class Worker:
    """Owns the clients of this process and answers the orchestrator's commands."""

    def __init__(self, max_seconds: float) -> None:
        self.stats = Stats()
        self.clients: list[Client] = []
        self.storm: Storm | None = None
        self.deadline = time.monotonic() + max_seconds

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Opens cmd["count"] clients (room clients when cmd has "rooms"); returns the counts."""
        host, port, path = cmd["host"], int(cmd["port"]), cmd.get("path", "/ws")
        tokens, sources = cmd.get("tokens") or [""], cmd.get("sources") or ["127.0.0.2"]
        rooms, count = cmd.get("rooms"), int(cmd["count"])
        # Optional offers: a permessage-deflate extension and a subprotocol (the wire formats).
        offers = "".join(f"{name}: {cmd[key]}\r\n" for key, name in (
            ("extensions", "Sec-WebSocket-Extensions"), ("protocol", "Sec-WebSocket-Protocol"))
            if cmd.get(key))
        # Clients that W4 may pause get a small receive buffer, so their backlog piles up in
        # the server (where its limits apply) rather than in the kernel.
        every = int(cmd.get("small_rcvbuf_every", 0))
        times = array("d")

        async def one(i: int) -> None:
            """Opens client i."""
            token = tokens[i % len(tokens)]
            target = f"{path}?token={token}" if token else path
            kind = SseClient if path == "/sse" else Client
            request = kind.build_request(host, port, target, offers)
            small = bool(every) and i % every == every - 1
            room = rooms[i % len(rooms)] if rooms else None
            began = time.time()
            client = await open_client(host, port, sources[i % len(sources)], lambda ready: (
                RoomClient(self.stats, request, ready, cmd.get("proto", "json"), room) if room
                else kind(self.stats, request, ready)), 4096 if small else 0)
            times.append(time.time() - began)
            client.small = small
            self.clients.append(client)

        stop_at = min(time.monotonic() + float(cmd.get("timeout", 60)), self.deadline)
        errors = await bounded(count, int(cmd.get("concurrency", 64)), stop_at, one)
        return {"ok": len(times), "failed": count - len(times), "errors": errors,
                "handshake_ms_sum": 1000.0 * sum(times)}

    def snapshot(self) -> dict[str, Any]:
        """Returns this process's counters."""
        s = self.stats  # the latencies go through files (dump)
        return {"received": s.received, "wire_bytes": s.wire_bytes, "other": s.other,
                "by_type": s.by_type, "last_recv": s.last_recv, "lost": s.lost,
                "close_codes": {str(k): v for k, v in s.close_codes.items()},
                "open": sum(1 for c in self.clients if c.open),
                "open_recording": sum(1 for c in self.clients if c.open and c.record)}

    def reset(self) -> dict[str, Any]:
        """Zeroes the receive counters."""
        self.stats.reset()
        return {"reset": True}

    def pause(self) -> dict[str, int]:
        """Stops reading on the small-buffer clients; they stop counting latency."""
        chosen = [c for c in self.clients if c.small and c.open and c.transport is not None]
        for client in chosen:
            client.transport.pause_reading()
            client.paused, client.record = True, False
        return {"paused": len(chosen)}

    def resume(self) -> dict[str, int]:
        """Resumes reading on the paused clients."""
        resumed = [c for c in self.clients if c.paused and c.open and c.transport is not None]
        for client in resumed:  # a closed one stays marked: it is never read again
            client.transport.resume_reading()
            client.paused = False
        return {"resumed": len(resumed)}

    def close_all(self) -> dict[str, int]:
        """Aborts every open client and forgets them all."""
        closing = [c for c in self.clients if c.open and c.transport is not None]
        for client in closing:
            client.transport.abort()
        self.clients = []
        return {"closed": len(closing)}

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Runs one command and returns its reply."""
        op = str(cmd.get("cmd"))
        if op.startswith("storm_"):
            return await handle_storm(self, cmd)
        if op.startswith("rooms_"):
            return await handle_rooms(self, cmd)
        if op == "connect":
            return await self.connect(cmd)
        if op == "dump":
            Path(cmd["path"]).write_bytes(self.stats.latencies.tobytes())
            return {"dumped": len(self.stats.latencies)}
        simple = {"stats": self.snapshot, "reset": self.reset, "resume": self.resume,
                  "close_all": self.close_all, "exit": lambda: {"exit": True}, "pause": self.pause}
        return simple[op]() if op in simple else {"error": f"unknown command {op!r}"}


async def main_async(max_seconds: float, make: Callable[[float], Worker] = Worker) -> int:
    """Answers commands from stdin with make(max_seconds)'s worker until EOF, `exit` or the
    deadline."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = make(max_seconds)
    while (remaining := worker.deadline - time.monotonic()) > 0:
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
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if cmd.get("cmd") == "exit":
            break
    if worker.storm is not None:
        worker.storm.stop()
    worker.close_all()
    return 0


def main(argv: list[str] | None = None, make: Callable[[float], Worker] = Worker) -> int:
    """Parses the command line and serves commands, on uvloop when it is installed."""
    parser = argparse.ArgumentParser(description="One load-generator process.")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="exit after this long whatever happens (default 900)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_async(args.max_seconds, make))
    return uvloop.run(main_async(args.max_seconds, make))


if __name__ == "__main__":
    sys.exit(main())
