"""Wire formats: how a request is written and a server frame read, in JSON or protobuf."""

from __future__ import annotations

import json
from typing import Any, Protocol

__all__ = ["Wire", "JsonWire", "ProtobufWire", "wire_for", "PROTOCOLS"]

PROTOCOLS = ("json", "protobuf")


class Wire(Protocol):
    """One wire format: its subprotocol, request encoder and frame decoder."""

    subprotocol: str | None

    def encode(self, request_id: int | None, verb: str, data: dict[str, Any]) -> str | bytes:
        """Returns one request as a frame."""
        ...

    def decode(self, frame: str | bytes) -> dict[str, Any]:
        """Returns one server frame as a dict {type, data, timestamp, channel?, offset?, id?};
        raises ValueError for a frame that is not one."""
        ...


def _decode_json(frame: str | bytes) -> dict[str, Any]:
    parsed = json.loads(frame)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        raise ValueError("a server frame is a JSON object with a type")
    return parsed


class JsonWire:
    """The default events.v1.json format: JSON text frames."""

    subprotocol: str | None = None

    def encode(self, request_id: int | None, verb: str, data: dict[str, Any]) -> str:
        """Returns one request as JSON text (the id only when the request expects a reply)."""
        request: dict[str, Any] = {"type": verb, "data": data}
        if request_id is not None:
            request["id"] = request_id
        return json.dumps(request, separators=(",", ":"), ensure_ascii=False)

    def decode(self, frame: str | bytes) -> dict[str, Any]:
        """Returns one JSON frame as a dict."""
        return _decode_json(frame)


class ProtobufWire:
    """The events.v1.protobuf format: binary `Request` and `Event` messages."""

    def __init__(self) -> None:
        from . import protobuf

        self._codec = protobuf
        self.subprotocol: str | None = protobuf.SUBPROTOCOL

    def encode(self, request_id: int | None, verb: str, data: dict[str, Any]) -> bytes:
        """Returns one request as `Request` bytes."""
        return self._codec.encode_request(request_id, verb, data)

    def decode(self, frame: str | bytes) -> dict[str, Any]:
        """Returns a binary `Event` (or a text frame, read as JSON) as a dict."""
        if isinstance(frame, str):
            return _decode_json(frame)
        try:
            return self._codec.decode_event(frame)
        except self._codec.DecodeError as exc:
            raise ValueError(f"not an events.v1 Event: {exc}") from exc


def wire_for(protocol: str) -> Wire:
    """Returns the wire format named `json` or `protobuf`."""
    if protocol == "json":
        return JsonWire()
    if protocol == "protobuf":
        return ProtobufWire()
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
