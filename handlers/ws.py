"""The /ws event socket and the admin-only /ws/stats and /ws/broadcast endpoints."""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.websocket import WebSocketHandler

from handlers import wsframes
from handlers.access_log import redact
from handlers.base import ApiHandler, ErrorEnvelopeMixin, bearer_token
from hub import transport
from hub.client import Client
from hub.events import Encoded, Event, EventType
from services import jsonlimits
from services.auth import Principal
from services.errors import (
    AuthenticationError,
    DatabaseUnavailable,
    PermissionDenied,
    RateLimited,
    ServiceError,
    ValidationError,
)

if TYPE_CHECKING:
    from app import Context

__all__ = ["EventSocketHandler", "StatsHandler", "BroadcastHandler"]

log = logging.getLogger("ws")

WELCOME = "Welcome to WebSocket real-time updates"
# Shared by every upgraded socket in place of its own request and response headers.
_NO_HEADERS = HTTPHeaders()


class EventSocketHandler(ErrorEnvelopeMixin, WebSocketHandler):
    """GET /ws: authenticates before the upgrade, then streams the caller's events."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.principal: Principal | None = None
        self.client: Client | None = None
        self._expiry: object | None = None

    # -- handshake -----------------------------------------------------------------------

    async def prepare(self) -> None:
        limiter = self.ctx.ws_connect_limiter
        if limiter is not None:
            wait = limiter.check_and_hit(self.request.remote_ip or "")
            if wait:
                raise RateLimited(f"too many connection attempts; retry in {wait} seconds", wait)
        origin = self.request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin):
            raise PermissionDenied(f"origin {origin} is not allowed to open /ws")
        token = self.get_query_argument("token", None) or bearer_token(self)
        if not token:
            raise AuthenticationError("missing token: connect to /ws?token=<access token>")
        self.principal = await self.ctx.auth.authenticate(token)
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ValidationError("this endpoint only accepts WebSocket upgrade requests")
        limit = self.ctx.settings.max_connections_per_user
        if limit and self.ctx.hub.user_connection_count(self.principal.user.id) >= limit:
            raise RateLimited(f"at most {limit} open connections per user", 5)

    def _origin_allowed(self, origin: str) -> bool:
        origin = origin.rstrip("/")
        if origin in self.ctx.settings.allowed_origins or "*" in self.ctx.settings.allowed_origins:
            return True
        return urlsplit(origin).netloc.lower() == self.request.host.lower()

    def check_origin(self, origin: str) -> bool:
        """Origins were already checked in prepare(), with an error envelope."""
        return True

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.ctx.settings.websocket_compression else None

    def get_websocket_protocol(self) -> Any:
        return wsframes.strict_protocol(self)  # RFC 6455 close codes for protocol errors

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        assert self.principal is not None
        user, claims = self.principal.user, self.principal.claims
        if self.ctx.hub.draining:  # shutdown began while this handshake awaited the database
            self.close(1001, "server shutting down")
            return
        self.set_nodelay(True)
        self._cap_send_buffer()
        self.client = Client(self, user.id, user.role, claims.sid, claims.ver)
        self.ctx.hub.register(self.client)
        self.send(Event(EventType.CONNECTION_ESTABLISHED, {
            "client_id": self.client.id,
            "message": WELCOME,
            "role": user.role,
            "user_id": user.id,
        }).encode())
        self._schedule_expiry(claims.exp)
        self._shed_handshake_state()

    def _cap_send_buffer(self) -> None:
        """Bounds the kernel's buffer for this socket, so a stalled client costs little memory.

        Linux otherwise grows a socket's send buffer up to tcp_wmem's maximum (4 MiB by
        default) before the hub's own backlog limits (256 messages, 1 MiB) even start to count.
        """
        size = self.ctx.settings.socket_send_buffer
        stream = self.ws_connection.stream if self.ws_connection else None  # type: ignore[attr-defined]
        if size and stream is not None and stream.socket is not None:
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def _shed_handshake_state(self) -> None:
        """Drops what only the handshake needed: thousands of idle sockets each keep less.

        Tornado reads the request headers only during the upgrade; the principal's model row
        and the query string (which holds the token) are not needed once the hub has the
        client. The URI keeps its path for log lines, with the token redacted.
        """
        self.principal = None
        request = self.request
        request.headers = _NO_HEADERS
        request.query_arguments = request.arguments = {}
        request.uri = redact(request.uri or "")
        request.query = ""
        self._headers = _NO_HEADERS

    def _detach_stream(self) -> IOStream:
        # Tornado also plants seven guard attributes (write, finish, ...) on every handler
        # here, about 1.5 KiB per idle socket; this handler never calls those after the
        # upgrade, so it detaches without them.
        return self.detach()

    def on_close(self) -> None:
        if self._expiry is not None:
            IOLoop.current().remove_timeout(self._expiry)
            self._expiry = None
        if self.client is not None:
            self.ctx.hub.unregister(self.client)

    def _schedule_expiry(self, exp: int) -> None:
        loop = IOLoop.current()
        if self._expiry is not None:
            loop.remove_timeout(self._expiry)
        self._expiry = loop.call_later(max(0.0, exp - time.time()), self._expired)

    def _expired(self) -> None:
        self._expiry = None
        self.close(1008, "token expired")

    # -- inbound -------------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.close(1003, "binary messages are not supported")
            return
        try:
            parsed = jsonlimits.loads(message)
        except ValueError as exc:
            self._reply_error("invalid_json", str(exc) if isinstance(exc, jsonlimits.JsonRejected)
                              else "messages must be JSON objects")
            return
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            self._reply_error("invalid_message", 'messages look like {"type": ..., "data": {...}}')
            return
        if parsed["type"] == "auth.refresh":
            await self._refresh(parsed.get("data"))
        else:
            self._reply_error("unknown_type", f"unknown message type {parsed['type'][:64]!r}")

    async def _refresh(self, data: Any) -> None:
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            self._reply_error("invalid_message", "auth.refresh needs data.token (an access token)")
            return
        try:
            principal = await self.ctx.auth.authenticate(token)
        except DatabaseUnavailable as exc:  # not the token's fault: the client may retry
            self._reply_error("unavailable", exc.message)
            return
        except ServiceError as exc:
            self.close(1008, f"refresh rejected: {exc.message}"[:120])
            return
        if self.client is None or principal.user.id != self.client.user_id:
            self.close(1008, "refresh rejected: token belongs to another user")
            return
        claims = principal.claims
        self.ctx.hub.update_session(self.client, claims.sid, claims.ver)
        self._schedule_expiry(claims.exp)
        self.send(Event(EventType.AUTH_REFRESHED, {"expires_at": claims.exp}).encode())

    def _reply_error(self, code: str, message: str) -> None:
        self.send(Event(EventType.ERROR, {"code": code, "message": message}).encode())

    # -- the hub's Connection interface --------------------------------------------------

    def send(self, event: Encoded) -> bool:
        """Writes a pre-encoded event; True if nothing is left queued."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return True
        if getattr(conn, "_compressor", None) is not None:
            self.write_message(event.text)  # permessage-deflate: Tornado frames per connection
            return False
        return transport.write_frame(conn.stream, event.frame)  # type: ignore[attr-defined]

    def backlog(self) -> tuple[int, int]:
        """Returns (queued messages, unsent bytes) for slow-consumer checks."""
        conn = self.ws_connection
        if conn is None:
            return 0, 0
        return transport.backlog(conn.stream)  # type: ignore[attr-defined]


class StatsHandler(ApiHandler):
    """GET /ws/stats: the hub's stats object itself (admins)."""

    async def get(self) -> None:
        await self.admin()
        self.finish(self.ctx.hub.get_stats())


class BroadcastHandler(ApiHandler):
    """POST /ws/broadcast: sends a system.alert to every connection (admins)."""

    async def post(self) -> None:
        actor = await self.admin()
        recipients = self.ctx.alerts.broadcast(actor, self.json_body())
        self.finish({
            "success": True,
            "message": "Broadcast sent successfully",
            "recipients": recipients,
            "stats": self.ctx.hub.get_stats(),
        })
