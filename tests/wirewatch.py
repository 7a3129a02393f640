"""A raw WebSocket client for wire-format tests: exact handshake headers and every frame bit."""

from __future__ import annotations

import base64
import json
import os
import socket
import zlib
from typing import Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders
from tornado.iostream import IOStream
from tornado.util import _websocket_mask

from hub import events_pb2 as pb
from hub.deflate import deflate_message

RSV1 = 0x40


def inflate(payload: bytes) -> bytes:
    """Inflates one no-context-takeover permessage-deflate message (RFC 7692 7.2.2)."""
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


class WireClient:
    """Speaks RFC 6455 by hand and keeps each received frame's first byte and payload."""

    def __init__(self, stream: IOStream, headers: HTTPHeaders) -> None:
        self.stream = stream
        self.headers = headers
        # (first byte, payload as received) of every data frame read so far.
        self.frames: list[tuple[int, bytes]] = []

    @classmethod
    async def connect(cls, ws_url: str, token: str, extensions: str | None = None,
                      protocol: str | None = None, query: str = "",
                      path: str = "/ws") -> WireClient:
        """Handshakes on path with the given Sec-WebSocket-Extensions and -Protocol offers."""
        url = urlsplit(ws_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stream = IOStream(sock)
        await stream.connect((url.hostname, url.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path}?token={token}{query} HTTP/1.1", f"Host: {url.netloc}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        await stream.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await stream.read_until(b"\r\n\r\n")).decode("latin-1")
        status, _, rest = head.partition("\r\n")
        assert status.startswith("HTTP/1.1 101"), head
        return cls(stream, HTTPHeaders.parse(rest))

    @property
    def extension(self) -> str | None:
        return self.headers.get("Sec-WebSocket-Extensions")

    async def read_frame(self) -> tuple[int, bytes]:
        """Returns (first byte, payload) of the next unmasked data frame (pings skipped)."""
        while True:
            first, second = await self.stream.read_bytes(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.stream.read_bytes(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.stream.read_bytes(8), "big")
            payload = await self.stream.read_bytes(length) if length else b""
            if first & 0x0F in (0x1, 0x2):
                self.frames.append((first, payload))
                return first, payload

    async def read_message(self) -> bytes:
        """Returns the next message's bytes, inflated when its frame has RSV1 set."""
        first, payload = await self.read_frame()
        return inflate(payload) if first & RSV1 else payload

    async def read_event(self, skip: tuple[str, ...] = ("user.online", "user.offline")
                         ) -> dict[str, Any]:
        """Returns the next JSON event not in skip."""
        while True:
            event = json.loads(await self.read_message())
            if event["type"] not in skip:
                return event

    async def read_pb(self, skip: tuple[str, ...] = ("user.online", "user.offline")) -> pb.Event:
        """Returns the next protobuf Event not in skip."""
        while True:
            event = pb.Event()
            event.ParseFromString(await self.read_message())
            if event.type not in skip:
                return event

    async def send(self, payload: bytes, opcode: int = 0x1, compress: bool = False) -> None:
        """Sends one masked message, deflated with RSV1 set when compress is true."""
        first = 0x80 | opcode
        if compress:
            payload, first = deflate_message(payload), first | RSV1
        await self.send_frame(first, payload)

    async def send_frame(self, first: int, payload: bytes) -> None:
        """Sends one masked frame with the given first byte (FIN, RSV bits and opcode)."""
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = bytes([first, 0x80 | size])
        elif size <= 0xFFFF:
            header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
        await self.stream.write(header + mask + _websocket_mask(mask, payload))

    def close(self) -> None:
        self.stream.close()
