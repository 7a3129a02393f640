"""A small Server-Sent Events client over a raw socket, for tests: it reads the response head,
then parses events as they arrive (id, event, data, comments), as EventSource does."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SseClient", "SseEvent", "open_sse"]


class SseEvent:
    """One dispatched event: its id (None without an id line), type, and parsed JSON data."""

    def __init__(self, id_: str | None, type_: str, data: str) -> None:
        self.id = id_
        self.type = type_
        self.raw = data
        self.data: Any = json.loads(data) if data else None

    def __repr__(self) -> str:
        return f"<SseEvent {self.type} id={self.id}>"


class SseClient:
    """An open SSE response: status, headers, and the events read so far."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""  # the body of a refused request
        self.events: list[SseEvent] = []
        self.comments = 0
        self.retry: int | None = None
        self.last_id: str | None = None  # what EventSource would send as Last-Event-ID
        self.closed = False
        self._buffer = b""
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def _head(self) -> None:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        if self.status != 200:
            length = int(self.headers.get("content-length", "0"))
            self.body = await self.reader.readexactly(length) if length else b""
            self.close()
        else:
            self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                self._buffer += chunk
                self._parse()
                self._changed.set()
        except (ConnectionError, OSError):
            pass
        self.closed = True
        self._changed.set()

    def _parse(self) -> None:
        while b"\n\n" in self._buffer:
            block, _, self._buffer = self._buffer.partition(b"\n\n")
            id_, type_, data = None, "message", []
            for line in block.decode("utf-8").split("\n"):
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "":
                    self.comments += 1
                elif field == "id":
                    id_ = value
                elif field == "event":
                    type_ = value
                elif field == "data":
                    data.append(value)
                elif field == "retry":
                    self.retry = int(value)
            if id_ is not None:
                self.last_id = id_
            if data:
                self.events.append(SseEvent(id_, type_, "\n".join(data)))

    def of_type(self, type_: str) -> list[SseEvent]:
        """Returns the events of one type received so far."""
        return [e for e in self.events if e.type == type_]

    async def wait(self, predicate, timeout: float = 10.0, what: str = "") -> None:
        """Waits until predicate(self) holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            assert remaining > 0, f"timed out waiting for {what}: {self.events[-5:]}"
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def close(self) -> None:
        """Drops the connection (as a network cut or a closed tab would)."""
        if self._task is not None:
            self._task.cancel()
        self.writer.close()
        self.closed = True


async def open_sse(base_url: str, token: str | None = None, channels: str = "",
                   last_id: str | None = None, query: str = "",
                   headers: dict[str, str] | None = None) -> SseClient:
    """Opens GET /sse on the server at base_url; returns once the head is read."""
    parts = urlsplit(base_url)
    path = "/sse?" + "&".join(p for p in (f"token={token}" if token else "",
                                          f"channels={channels}" if channels else "",
                                          query) if p)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}",
             "Accept: text/event-stream"]
    if last_id is not None:
        lines.append(f"Last-Event-ID: {last_id}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    client = SseClient(reader, writer)
    await asyncio.wait_for(client._head(), 10)
    return client
