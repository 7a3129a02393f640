"""Client: one resuming connection to the events server, and `connect()` to open it.

The client keeps one socket open and, when it drops, opens another (backoff with full
jitter) that resumes the feed from its last offset and epoch and re-subscribes every room
from theirs; 1008 revocations end it with Revoked instead. Events of the feed and of every
room come out of `events()` in order, each once, followed after each (re)connect by a
`recovery` event that says which streams recovered. Frame handling is in receiver.py, the
reconnect loop in link.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .backoff import Backoff
from .errors import ConnectionLost, RequestError, RequestTimeout
from .event import Event
from .link import Link
from .receiver import Receiver
from .rest import Tokens
from .subscription import Subscription
from .tokens import TokenKeeper, TokenSource
from .urls import http_base
from .wire import wire_for

__all__ = ["Client", "connect"]

_END = object()  # queued after the last event once the client is closed


class Client:
    """A connection to the events server that survives drops (see the module docstring).

    Options: `token` (an access token), `refresh_token` (renew it before it expires and
    after a `token expired` close), or `get_token` (a callable, maybe async, returning a
    fresh access token); `on_tokens` is called with each new Tokens bundle after a refresh
    (refresh tokens rotate: persist the new one); `protocol` is "json" or "protobuf";
    `backoff` the reconnect delays; `request_timeout` bounds each request (including a wait
    for the connection); `http` an httpx.AsyncClient for the refresh calls; `ws_options`
    extra keyword arguments for websockets' connect (ssl, proxy, ...).
    """

    def __init__(self, url: str, *, token: str, refresh_token: str | None = None,
                 get_token: TokenSource | None = None,
                 on_tokens: Callable[[Tokens], Any] | None = None, protocol: str = "json",
                 backoff: Backoff | None = None, request_timeout: float = 10.0,
                 open_timeout: float = 10.0, http: httpx.AsyncClient | None = None,
                 ws_options: dict[str, Any] | None = None) -> None:
        self.url = http_base(url)
        self.protocol = protocol
        self.request_timeout = request_timeout
        self.tokens = TokenKeeper(self.url, token, refresh_token, get_token, on_tokens, http,
                                  request_timeout)
        self.wire = wire_for(protocol)
        self.subscriptions: dict[str, Subscription] = {}
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.receiver = Receiver(self)
        self.link = Link(self, backoff or Backoff(), open_timeout, ws_options or {})
        self.failure: BaseException | None = None
        self.closed = False
        # Set while a socket is open and welcomed; also set on close or failure to wake
        # whoever waits (they look at `closed` and `failure` first).
        self.ready = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Client:
        """Opens the first connection and returns once it is welcomed; raises ConnectError
        or AuthError if it cannot be opened (later drops are retried by themselves)."""
        try:
            await self.link.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Closes the socket (1000) and stops reconnecting; `events()` then ends after the
        events already received, and requests in flight fail with ConnectionLost."""
        if self.closed:
            return
        self.closed = True
        self.ready.set()
        await self.link.stop()
        self.receiver.requests.fail_all(ConnectionLost("client closed"))
        for subscription in self.subscriptions.values():
            subscription.left(ConnectionLost("client closed"))
        self.queue.put_nowait(_END)

    def fail(self, exc: BaseException) -> None:
        """Ends the client with a terminal error (Revoked, AuthError, ConnectError):
        `events()` raises it after the events already received, and so does every call."""
        if self.failure is not None or self.closed:
            return
        self.failure = exc
        self.ready.set()
        self.receiver.requests.fail_all(exc)
        for subscription in self.subscriptions.values():
            subscription.left(exc)
        self.queue.put_nowait(exc)

    async def __aenter__(self) -> Client:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a socket is open and welcomed right now."""
        return self.link.live is not None

    @property
    def connections(self) -> int:
        """How many sockets have been welcomed so far (1 + the reconnects)."""
        return self.receiver.connections

    @property
    def welcome(self) -> dict[str, Any] | None:
        """The latest welcome's data: client_id, user_id, role, the feed's position."""
        return self.receiver.welcome

    @property
    def access_token(self) -> str:
        """The access token in use (renewed before it expires)."""
        return self.tokens.access_token

    @property
    def refresh_token(self) -> str | None:
        """The latest refresh token (they rotate: persist this one, not the first)."""
        return self.tokens.refresh_token

    def position(self, channel: str | None = None) -> str | None:
        """Returns the offset of the last event delivered in a stream (None: the feed)."""
        stream = self.receiver.streams.get(channel)
        return None if stream is None else stream.offset

    # -- events ----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Yields every event of the feed and of the subscribed rooms, in order within each
        stream and each once, plus a `recovery` event after each (re)connect. Ends when the
        client is closed; raises Revoked, AuthError or ConnectError when it fails."""
        while True:
            item = await self.queue.get()
            if isinstance(item, Event):
                yield item
                continue
            self.queue.put_nowait(item)  # so that every later iteration ends the same way
            if isinstance(item, BaseException):
                raise item
            return

    # -- requests --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.closed:
            raise ConnectionLost("client closed")

    async def _socket(self, deadline: float) -> ClientConnection:
        """Returns the welcomed socket, waiting for a reconnect until the deadline."""
        loop = asyncio.get_running_loop()
        while True:
            self._check_usable()
            ws = self.link.live
            if ws is not None:
                return ws
            try:
                await asyncio.wait_for(self.ready.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                self._check_usable()
                raise RequestTimeout(f"not connected within {self.request_timeout} s") from None

    async def request(self, verb: str, data: dict[str, Any]) -> dict[str, Any]:
        """Sends a request and returns its reply's data; raises RequestError (the server's
        code), RequestTimeout, ConnectionLost (the socket dropped first) or Revoked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        ws = await self._socket(deadline)
        request_id, future = self.receiver.requests.open()
        assert future is not None
        try:
            await ws.send(self.wire.encode(request_id, verb, data))
        except ConnectionClosed as exc:
            self.receiver.requests.forget(request_id)
            raise ConnectionLost(f"{verb}: the connection closed") from exc
        try:
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            self.receiver.requests.forget(request_id)
            raise RequestTimeout(f"{verb}: no answer within {self.request_timeout} s") from None

    async def subscribe(self, channel: str) -> Subscription:
        """Subscribes to a room and returns its Subscription once the server replied (after
        a reconnect if the socket is down); raises RequestError if the room is refused."""
        self._check_usable()
        subscription = self.subscriptions.get(channel)
        if subscription is None:
            subscription = Subscription(self, channel)
            self.subscriptions[channel] = subscription
            self.receiver.streams.add(channel)
            ws = self.link.live
            if ws is not None:  # otherwise the next welcome subscribes it
                await self.receiver.send_subscribe(ws, channel)
        return await subscription.wait()

    async def unsubscribe(self, channel: str) -> None:
        """Leaves a room (see Subscription.unsubscribe)."""
        subscription = self.subscriptions.pop(channel, None)
        self.receiver.forget_room(channel)
        if subscription is None:
            return
        subscription.left(None)
        if self.link.live is not None:
            try:
                await self.request("unsubscribe", {"channel": channel})
            except RequestError as exc:
                if exc.code != "not_subscribed":  # the server dropped it first: same outcome
                    raise

    async def publish(self, channel: str, data: dict[str, Any]) -> dict[str, Any]:
        """Publishes a JSON object to a room (no subscription needed); returns the reply."""
        return await self.request("publish", {"channel": channel, "data": data})

    async def presence(self, channel: str) -> list[dict[str, Any]]:
        """Returns a room's members: [{user_id, name, connections}]."""
        reply = await self.request("presence", {"channel": channel})
        return list(reply.get("members") or [])

    async def history(self, channel: str, *, before: str | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Returns a room's stored messages, newest first."""
        data: dict[str, Any] = {"channel": channel}
        if before is not None:
            data["before"] = before
        if limit is not None:
            data["limit"] = limit
        reply = await self.request("history", data)
        return list(reply.get("messages") or [])

    async def typing(self, channel: str, active: bool = True) -> None:
        """Sends a typing signal to a room (no reply: an error comes as an `error` event)."""
        loop = asyncio.get_running_loop()
        ws = await self._socket(loop.time() + self.request_timeout)
        try:
            await ws.send(self.wire.encode(None, "typing", {"channel": channel,
                                                            "active": active}))
        except ConnectionClosed as exc:
            raise ConnectionLost("typing: the connection closed") from exc


class connect:
    """Opens a Client: `async with connect(url, token=...) as client:` (closed on exit), or
    `client = await connect(url, token=...)` (then `await client.close()`). Takes Client's
    options."""

    def __init__(self, url: str, **options: Any) -> None:
        self._url = url
        self._options = options
        self._client: Client | None = None

    async def _open(self) -> Client:
        self._client = Client(self._url, **self._options)
        return await self._client.start()

    def __await__(self) -> Generator[Any, None, Client]:
        return self._open().__await__()

    async def __aenter__(self) -> Client:
        return await self._open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.close()
