"""GET /sse: the caller's live feed and rooms as Server-Sent Events, resumed by Last-Event-ID.

Everything that can refuse is checked before the stream starts (401 token, 403/404 a room,
429 rate, 503 a log that cannot be read), with the usual error envelope. Then, with nothing
awaited in between, the response head, the welcome, each stream's missed events and the
`recovery` event are written and the connection joins the hub, so no live event can come
before, between or twice (the WebSocket handshake's rule).
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

from edge import internals
from edge.sse import RETRY_MS, SseConnection, parse_cursor
from handlers.base import ApiHandler, bearer_token
from hub.client import Client, new_client_id
from hub.events import SSE, Event, EventType, sse_position
from hub.history import Recovery, StreamUnavailable
from hub.messages import FEED
from services.errors import AuthenticationError, PermissionDenied, RateLimited
from services.rooms import channel_room
from services.streams import StreamBusy

if TYPE_CHECKING:
    from context import Context
    from services.principal import Principal

__all__ = ["SseHandler"]

WELCOME = "Welcome to Server-Sent Events real-time updates"


class SseHandler(ApiHandler):
    """GET /sse?token=..&channels=room:a,room:b (Last-Event-ID resumes)."""

    async def get(self) -> None:
        principal = await self._authenticate()
        channels = await self._channels(principal)
        cursor = self.request.headers.get("Last-Event-ID")
        if cursor is None:
            cursor = self.get_query_argument("last_event_id", None)
        feed_at, rooms_at = parse_cursor(cursor)
        hub = self.ctx.hub
        try:  # a shared log (Redis) may have to be read before the streams can be recovered
            await hub.prepare(FEED, feed_at[1] if feed_at else None)
            for channel in channels:
                at = rooms_at.get(channel)
                await hub.prepare(channel, at[1] if at else None)
        except StreamUnavailable:
            raise StreamBusy("the event stream cannot be read now; retry shortly") from None
        limit = self.ctx.settings.max_connections_per_user
        if limit and hub.user_connection_count(principal.id) >= limit:
            raise RateLimited(f"at most {limit} open connections per user", 5)
        client_id = await self._ask_application(principal, channels)
        if self.request.connection is None or self.request.connection.stream.closed():
            return  # the client left while the checks awaited
        self._start(principal, channels, feed_at, rooms_at, client_id)

    async def _authenticate(self) -> Principal:
        limiter = self.ctx.ws_connect_limiter
        if limiter is not None:
            wait = await limiter.acheck_and_hit(self.request.remote_ip or "")
            if wait:
                raise RateLimited(f"too many connection attempts; retry in {wait} seconds", wait)
        token = self.get_query_argument("token", None) or bearer_token(self)
        if not token:
            raise AuthenticationError("missing token: connect to /sse?token=<access token>")
        return await self.ctx.auth.authenticate(token)

    async def _channels(self, principal: Principal) -> list[str]:
        """Returns the rooms `?channels=` names, each one the caller may subscribe to."""
        text = self.get_query_argument("channels", "") or ""
        channels = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
        if len(channels) > self.ctx.settings.max_subscriptions:
            raise PermissionDenied(
                f"at most {self.ctx.settings.max_subscriptions} subscriptions per connection")
        for channel in channels:
            await self.ctx.rooms.authorize(channel_room(channel), principal.id, principal.role)
        return channels

    async def _ask_application(self, principal: Principal, channels: list[str]) -> str | None:
        """Asks the application's connect and subscribe hooks, after every built-in rule
        (docs/hooks.md); returns the client id they were asked about (None: not asked)."""
        hooks = self.ctx.hooks
        if not (hooks.wants("connect") or hooks.wants("subscribe")):
            return None
        client_id = new_client_id()
        await hooks.connect(principal, client_id, "sse")
        for channel in channels:
            await hooks.subscribe(principal, channel, client_id, "sse")
        return client_id

    def _start(self, principal: Principal, channels: list[str],
               feed_at: tuple[str, str] | None, rooms_at: dict[str, tuple[str, str]],
               client_id: str | None = None) -> None:
        """Writes the head, the welcome and every stream's missed events; joins the hub."""
        ctx, hub = self.ctx, self.ctx.hub
        self.set_status(200)
        stream = self.detach()  # the response is this stream's from now on
        internals.break_cycles(self)  # as finish() would: a detached response never finishes
        conn = SseConnection(stream, hub.writes)
        client = Client(conn, principal.id, principal.role, principal.session_id,
                        principal.token_version, client_id=client_id,
                        name=sys.intern(principal.name), external_id=principal.external_id)
        client.variant = SSE
        conn.client = client
        hub.writes.arm()  # the head and everything before the first live event: one send()
        conn.write_own(self._head() + f"retry: {RETRY_MS}\n\n".encode())
        recovery, missed = hub.recover(client, FEED, *_since_epoch(feed_at))
        streams: list[dict[str, Any]] = [{"channel": None, "recovered": recovery.recovered,
                                          "missed": len(missed)}]
        rooms = [(channel, *hub.recover(client, channel, *_since_epoch(rooms_at.get(channel)),
                                        joining=True)) for channel in channels]
        # The welcome's id is where each replay starts, so a stream cut during the replay
        # resumes from what really arrived; each replayed event then moves the cursor on.
        conn.follow(_start_part(None, recovery, feed_at),
                    {channel[5:]: _start_part(channel, room, rooms_at.get(channel))
                     for channel, room, _ in rooms})
        conn.write_own(_with_id(Event(EventType.CONNECTION_ESTABLISHED, {
            "client_id": client.id, "message": WELCOME, "role": principal.role,
            "user_id": principal.id, **recovery.position(len(missed))}), conn.cursor))
        for event in missed:
            conn.send(event)
        hub.register(client)
        for channel, room, room_missed in rooms:
            streams.append({"channel": channel, "recovered": room.recovered,
                            "missed": len(room_missed)})
            for event in room_missed:
                conn.send(event)
        conn.write_own(_with_id(Event("recovery", {"streams": streams}), conn.cursor))
        for channel in channels:  # live from here (presence announces the join after this)
            hub.subscribe(client, channel)
        conn.on_closed = functools.partial(_closed, ctx)
        ctx.sse_pinger.add(conn)
        conn.expiry = ctx.heartbeat.expire(conn, principal.expires_at)
        ctx.metrics.connection_opened("sse")
        ctx.webhooks.connection_opened(client, "sse")
        self.application.log_request(self)

    def _head(self) -> bytes:
        """Returns the response head: status, the SSE headers, CORS for an allowed origin's
        EventSource (--cors-origins), Date and security headers."""
        lines = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                 "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n")
        origin = self.request.headers.get("Origin")
        allowed = self.ctx.origins.cors_origin(origin)
        if allowed is not None:
            lines += f"Access-Control-Allow-Origin: {allowed}\r\n"
            if allowed != "*":
                lines += "Access-Control-Allow-Credentials: true\r\n"
        if origin is not None:
            lines += "Vary: Origin\r\n"
        upgrade_headers = getattr(self.application, "upgrade_headers", None)
        return lines.encode("latin-1") + (upgrade_headers() if upgrade_headers else b"\r\n")


def _closed(ctx: Context, conn: SseConnection) -> None:
    """Takes a closed stream out of the hub, the pinger and the expiry wheel; counts it."""
    ctx.sse_pinger.discard(conn)
    if conn.expiry is not None:
        ctx.heartbeat.forget(conn, conn.expiry)
        conn.expiry = None
    if conn.client is not None:
        ctx.hub.unregister(conn.client)
        ctx.metrics.connection_closed(conn.code, "sse")
        ctx.webhooks.connection_closed(conn.client, "sse", conn.code, conn.reason)
        conn.client.detach()


def _start_part(channel: str | None, recovery: Recovery, at: tuple[str, str] | None) -> str:
    """Returns a stream's first cursor part: the client's own position when it is recovered
    (the replay follows), else the stream's current one."""
    if recovery.recovered and at is not None:
        return sse_position(channel, at[0], at[1])
    return sse_position(channel, recovery.epoch, recovery.offset)


def _since_epoch(at: tuple[str, str] | None) -> tuple[str | None, str | None]:
    return (at[1], at[0]) if at else (None, None)


def _with_id(event: Event, cursor: str) -> bytes:
    """Returns an event of this connection's own (welcome, recovery) with its cursor as id."""
    frame = event.encode().frame_for(SSE)
    return b"id: " + cursor.encode("utf-8") + b"\n" + frame
