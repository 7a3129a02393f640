"""A minimal Engine.IO v4 / Socket.IO v5 client codec over WebSocket, for the load generator.

Only what the rooms workload needs, default namespace "/", no acks, no binary: the server
opens with `0{"sid",...}`, the client connects with `40`, the server answers `40{...}`;
events are `42["name",data]` both ways; the server pings with `2` and the client answers
`3`. Client frames are masked (with a zero key, which leaves the payload as is).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["PATH", "CONNECT", "PONG", "client_frame", "event", "parse"]

PATH = "/socket.io/?EIO=4&transport=websocket"
CONNECT = b"40"
PONG = b"3"


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """Returns one masked WebSocket frame (FIN set) carrying payload."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def event(name: str, data: Any) -> bytes:
    """Returns the Engine.IO message packet of a Socket.IO event in the default namespace."""
    return b"42" + json.dumps([name, data], separators=(",", ":")).encode()


def parse(packet: bytes) -> tuple[str, Any]:
    """Returns (kind, value) of one Engine.IO packet: open, ping, pong, close, connect,
    connect_error, disconnect, event ((name, data)) or unknown."""
    if not packet:
        return "unknown", None
    eio = packet[:1]
    if eio == b"0":
        return "open", json.loads(packet[1:] or b"{}")
    if eio == b"2":
        return "ping", packet[1:]
    if eio == b"3":
        return "pong", packet[1:]
    if eio == b"1":
        return "close", None
    if eio != b"4" or len(packet) < 2:
        return "unknown", packet
    sio, rest = packet[1:2], packet[2:]
    if sio == b"0":
        return "connect", json.loads(rest) if rest else {}
    if sio == b"4":
        return "connect_error", json.loads(rest) if rest else {}
    if sio == b"1":
        return "disconnect", None
    if sio == b"2":
        start = rest.find(b"[")  # skips a namespace ("/x,") and an ack id, if any
        args = json.loads(rest[start:]) if start >= 0 else []
        return "event", (args[0] if args else "", args[1] if len(args) > 1 else None)
    return "unknown", packet
