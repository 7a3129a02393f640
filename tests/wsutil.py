"""Helpers shared by the /ws test modules: expectations, rejections and scripted clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt
import pytest
from conftest import TEST_SECRET, Api, next_event
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import IOStream
from tornado.websocket import WebSocketClientConnection, websocket_connect

from auth.jwt import TokenIssuer

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")



async def expect(conn: WebSocketClientConnection, type_: str) -> dict[str, Any]:
    """Reads the next event on conn and asserts its type; returns the event."""
    event = await next_event(conn)
    assert event["type"] == type_, event
    return event


async def sentinel(api: Api, admin_token: str, *conns: WebSocketClientConnection) -> None:
    """Broadcasts a unique alert and asserts it is the very next message on every conn.

    This proves, without sleeping, that nothing else was delivered to those sockets between
    the previous action and now: events are written in publish order on each socket.
    """
    text = f"sentinel-{uuid.uuid4().hex[:8]}"
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": text}, admin_token)
    assert status == 200, body
    for conn in conns:
        event = await next_event(conn)
        assert event["type"] == "system.alert" and event["data"]["message"] == text, event


async def reject(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """Attempts a WebSocket upgrade that must fail; returns (status, JSON body, headers)."""
    request = HTTPRequest(url, headers=headers or {})
    with pytest.raises(HTTPClientError) as info:
        conn = await websocket_connect(request)
        conn.close()
    response = info.value.response
    assert response is not None, info.value
    return info.value.code, json.loads(response.body), response.headers


def assert_error_envelope(body: Any, code: str) -> None:
    assert body["success"] is False and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def reissue(api: Api, token: str, ttl: int) -> tuple[str, int]:
    """Returns a copy of an access token with a new lifetime (same user, session, version)."""
    settings = api.ctx.settings
    claims = api.ctx.issuer.verify(token, "access")
    issuer = TokenIssuer(TEST_SECRET, settings.issuer, settings.audience, ttl, 60)
    fresh = issuer.issue_access(claims.user_id, claims.role, claims.ver, claims.sid)
    return fresh, pyjwt.decode(fresh, options={"verify_signature": False})["exp"]


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Polls predicate on the IOLoop until it holds, failing after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)



class Room:
    """An admin, a superadmin, a user with two tabs and a bystander user, all connected."""

    admin: dict[str, Any]
    superadmin: dict[str, Any]
    user: dict[str, Any]
    bystander: dict[str, Any]

    @classmethod
    async def open(cls, api: Api) -> Room:
        room = cls()
        room.api = api
        room.admin = await api.admin()
        room.superadmin = await api.admin("superadmin")
        room.user = await api.register()
        room.bystander = await api.register()
        room.a = await api.ws(room.admin["access_token"])
        room.sa = await api.ws(room.superadmin["access_token"])
        room.tabs = [await api.ws(room.user["access_token"]) for _ in range(2)]
        room.b = await api.ws(room.bystander["access_token"])
        return room

    @property
    def admins(self) -> list[WebSocketClientConnection]:
        return [self.a, self.sa]

    @property
    def everyone(self) -> list[WebSocketClientConnection]:
        return [self.a, self.sa, *self.tabs, self.b]

    @property
    def uid(self) -> int:
        return self.user["user"]["id"]

    async def quiet(self) -> None:
        """Asserts no socket received anything beyond what the test already read."""
        await sentinel(self.api, self.admin["access_token"], *self.everyone)



class RawClient:
    """A WebSocket client speaking the protocol by hand, so a test controls every read."""

    def __init__(self, stream: IOStream, client_id: str) -> None:
        self.stream = stream
        self.client_id = client_id

    @classmethod
    async def connect(cls, api: Api, token: str, rcvbuf: int = 0) -> RawClient:
        """Handshakes (optionally with a tiny receive buffer) and reads the welcome."""
        url = urlsplit(api.base_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        stream = IOStream(sock)
        await stream.connect((url.hostname, url.port))
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.write(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await stream.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(stream, "")
        opcode, payload = await client.read_frame()
        assert opcode == 0x1
        client.client_id = json.loads(payload)["data"]["client_id"]
        return client

    async def read_frame(self) -> tuple[int, bytes]:
        """Returns (opcode, payload) of the next unmasked server frame."""
        first, second = await self.stream.read_bytes(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.stream.read_bytes(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.stream.read_bytes(8), "big")
        return first & 0x0F, await self.stream.read_bytes(length) if length else b""

    def close(self) -> None:
        self.stream.close()


