"""The upgrade lane: /ws handshakes served without Tornado's HTTP/1.1 request machinery.

A handshake storm (every client of a restarted node reconnecting at once) is mostly this
server reading request heads and answering 101s. Tornado serves each request through an
HTTP1ServerConnection task, an HTTP1Connection, the router, a RequestHandler._execute task
and WebSocketHandler.get(), a large share of what an authenticated handshake costs.

The lane reads the first request head of every new connection itself. When it is a
well-formed WebSocket upgrade to the lane's route (GET, HTTP/1.1, no body, the WebSocket
headers present, version 13), the route's own handler runs directly on it: the same
EventSocketHandler, the same prepare() (rate limit, origin, token, session, limits), the
same get(), 101 response and open(). Everything else goes back to Tornado untouched: the
head is returned to the stream's read buffer and an HTTP1ServerConnection serves the
connection from its first byte, so other routes, keep-alive, malformed requests and every
error response are Tornado's as before. A refusal the lane's prepare() raised travels with
the stream (`stream.refusal`): the handler Tornado builds raises it again at once, so the
client gets the usual error envelope and the refusal is counted, and the rate limiter hit,
once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado.escape import parse_qs_bytes
from tornado.httputil import HTTPInputError, HTTPServerRequest, RequestStartLine
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError, UnsatisfiableReadError

from edge import internals

if TYPE_CHECKING:
    from tornado.web import Application, RequestHandler

__all__ = ["UpgradeLane"]

log = logging.getLogger("server")

# A request head ends at the first empty line (the pattern Tornado's HTTP1Connection uses;
# head_end() finds the same end without it).
_HEAD_END = b"\r?\n\r?\n"
# One header field line as Tornado's HTTPHeaders accepts it (RFC 9110 field-name token, a
# field value of visible or obs-text characters with inner spaces and tabs), but ended by
# CRLF only; a head with anything else is handed to Tornado. One pattern for the whole head
# costs a fraction of HTTPHeaders.parse(), which checks each line with several patterns.
# Possessive runs (never given back) keep it linear, and a run of visible characters is
# matched in one step where a character-by-character group took four times as long.
_VISIBLE = r"[\x21-\x7e\x80-\xff]++"
_FIELD_VALUE = rf"{_VISIBLE}(?:[ \t]++{_VISIBLE})*+"
_FIELD = rf"([!#$%&'*+\-.^_`|~0-9A-Za-z]++):[ \t]*+({_FIELD_VALUE})?[ \t]*+\r\n"
_FIELDS = re.compile(rf"(?:{_FIELD})*+\r\n")
_FIELD_LINE = re.compile(_FIELD)
# What each recv() of a head asks for: a handshake's head is a few hundred bytes, and each
# recv() allocates and zeroes a buffer of this size (the stream's own, 64 KiB, is for frames).
# A longer head takes more than one.
_HEAD_CHUNK = 4096
# Query arguments the lane parses itself; a request with more is handed to Tornado.
_MAX_ARGUMENTS = 100
# Fetch-metadata values under which Tornado's cross-origin check needs no Origin header.
_SAME_SITE = (None, "same-origin", "none")


def head_end(data: bytes) -> int:
    """Returns where the head in data ends, as a search for _HEAD_END would (the end of its
    first match), or -1 if it has not ended. A regex search for a pattern that may begin
    with an optional CR tries every position of a handshake's ~400 bytes (about 4 us); two
    byte searches do it in a fifth. A match's core is LF, an optional CR, LF, and the
    first match is the one with the first core."""
    bare, crlf = data.find(b"\n\n"), data.find(b"\n\r\n")
    if crlf >= 0 and (bare < 0 or crlf < bare):
        return crlf + 3
    return bare + 2 if bare >= 0 else -1


def start_line(line: str) -> RequestStartLine | None:
    """Returns an HTTP/1.1 request line's method, target and version, if Tornado's parser
    accepts it; None for any other line (Tornado's own parser then decides).

    Tornado checks the line against one pattern that matches the target a character at a
    time, a few microseconds for a target carrying a token; this accepts a subset of the
    lines it accepts: three parts separated by single spaces, a method of ASCII letters, a
    target of visible ASCII characters, HTTP/1.1.
    """
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1":
        return None
    method, target, version = parts
    if not (method.isascii() and method.isalpha() and target.isascii() and target.isprintable()
            and target):
        return None
    return RequestStartLine(method, target, version)


class _LaneConnection:
    """What a RequestHandler needs of its connection before the upgrade: a close notice and
    detach(). Two slots, where Tornado's HTTP1Connection keeps a dict and its parameters."""

    __slots__ = ("stream", "context")

    def __init__(self, stream: IOStream, context: Any) -> None:
        self.stream, self.context = stream, context

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self.stream.set_close_callback(callback)

    def detach(self) -> IOStream:
        self.stream.set_close_callback(None)
        return self.stream


class UpgradeLane:
    """Serves new connections' WebSocket upgrades to one route; hands everything else back.

    `http(stream, context)` starts Tornado's HTTP/1.1 service on a connection (EdgeServer).
    """

    def __init__(self, app: Application, route: tuple[str, type[RequestHandler], dict[str, Any]],
                 *, head_timeout: float, max_head: int) -> None:
        self.app = app
        self.path, self.handler_class, self.kwargs = route
        # The errors the handler's prepare() refuses an upgrade with (its class says which):
        # answered as refusals, without a traceback; any other is a fault, logged as such.
        self.refusals: tuple[type[Exception], ...] = getattr(
            self.handler_class, "refusals", ())
        self.head_timeout, self.max_head = head_timeout, max_head
        # EdgeApplication's client address resolution (--trusted-proxies), which its router
        # applies to Tornado's requests.
        self._resolve_client = getattr(app, "resolve_client", None)
        self._prefix = f"GET {self.path}".encode("ascii")
        # One per connection the lane is reading a head of or upgrading; an open WebSocket holds
        # none (its protocol reads with callbacks, edge/protocol.py).
        self._tasks: set[Any] = set()
        self._loop: Any = None  # the asyncio loop the server accepts on, from the first connection
        self.upgraded = 0  # handshakes the lane took to the handler's get()
        self.handed_back = 0  # connections given to Tornado (other requests, refusals)

    def serve(self, stream: IOStream, context: Any,
              http: Callable[[IOStream, Any], None]) -> None:
        """Starts serving a new connection."""
        loop = self._loop
        if loop is None:  # the server's loop, looked up once (each lookup calls getpid())
            loop = self._loop = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
        task = loop.create_task(self._serve(stream, context, http))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Ends every connection still in its handshake (its socket is aborted) and waits."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, stream: IOStream, context: Any,
                     http: Callable[[IOStream, Any], None]) -> None:
        try:
            await self._upgrade(stream, context, http)
        except Exception:  # a fault in the lane itself: logged, and the client let go
            log.exception("upgrade lane: unexpected error")
            stream.close()

    async def _upgrade(self, stream: IOStream, context: Any,
                       http: Callable[[IOStream, Any], None]) -> None:
        head = self._head_now(stream) if self.max_head >= _HEAD_CHUNK else None
        if head is None and not stream.closed():
            head = await self._read_head(stream)
        if head is None:
            return
        request = self._upgrade_request(head, stream, context)
        if request is None:
            self._hand_back(stream, head, context, http)
            return
        handler = self.handler_class(self.app, request, **self.kwargs)
        refusal: Exception | None = None
        try:
            await handler.prepare()  # type: ignore[misc]
        except self.refusals as exc:  # answered by Tornado's handler, counted once
            # Without its traceback, which would tie this frame, the stream and the error
            # into a reference cycle (garbage left for a full collection, per refusal).
            refusal = exc.with_traceback(None)
        except Exception as exc:  # a fault, not a refusal: Tornado's handler logs it (500)
            refusal = exc
        if refusal is not None:
            internals.break_cycles(handler)  # as finish() would
            stream.refusal = refusal  # type: ignore[attr-defined]
            self._hand_back(stream, head, context, http)
            return
        if stream.closed():  # the client left while prepare() awaited
            return
        del head, request  # this frame lasts as long as the socket: keep only what it needs
        self.upgraded += 1
        try:
            await handler.get()  # type: ignore[attr-defined]  # the 101, open(), then frames
        except Exception:
            handler.log_exception(*sys.exc_info())
            stream.close()

    async def _read_head(self, stream: IOStream) -> bytes | None:
        """Reads the request head with Tornado's read_until_regex (and the head timeout);
        None when the stream closed or the head was too large."""
        chunk, stream.read_chunk_size = stream.read_chunk_size, _HEAD_CHUNK
        try:
            reading = stream.read_until_regex(_HEAD_END, max_bytes=self.max_head)
            if reading.done():  # the head came with the connection: no timer to set
                return reading.result()
            loop = IOLoop.current()
            timer = loop.call_later(self.head_timeout, stream.close)
            try:
                return await reading
            finally:
                loop.remove_timeout(timer)
        except (StreamClosedError, UnsatisfiableReadError):
            stream.close()  # as Tornado does with a head too slow or too large
            return None
        finally:
            stream.read_chunk_size = chunk

    def _head_now(self, stream: IOStream) -> bytes | None:
        """Returns the request head if one recv() brings all of it, as read_until_regex()
        would read it (the bytes after it stay in the stream's read buffer), without its
        Future and buffer bookkeeping: in a storm the head has mostly arrived by the time
        the connection is accepted. None otherwise: what the recv() brought is in the read
        buffer for read_until_regex(), or the stream is closed (a read error closes it, as
        Tornado's read would, and one Tornado would raise is raised)."""
        data = internals.recv_now(stream, _HEAD_CHUNK)
        if not data:
            return None
        end = head_end(data)
        if end < 0:
            internals.unread(stream, data)
            return None
        if end < len(data):
            internals.unread(stream, data[end:])
            return data[:end]
        return data

    def _upgrade_request(self, head: bytes, stream: IOStream,
                         context: Any) -> HTTPServerRequest | None:
        """Returns the request if head is an upgrade the lane serves, else None."""
        if not head.startswith(self._prefix) or head[len(self._prefix)] not in b" ?":
            return None
        text = head.decode("latin-1")
        eol = text.find("\r\n")
        start = start_line(text[:eol])
        if start is None:
            return None
        fields = text[eol + 2:]
        if not _FIELDS.fullmatch(fields):
            return None
        pairs = _FIELD_LINE.findall(fields)
        # The checks read a plain dict by lower-case name (HTTPHeaders normalises each name on
        # every lookup); a repeated field, which Tornado's parser would join, goes to Tornado.
        field = {name.lower(): value for name, value in pairs}
        if len(field) != len(pairs):
            return None
        get = field.get
        connection = get("connection", "").lower().split(",")
        if ("content-length" in field
                or "transfer-encoding" in field
                or get("upgrade", "").lower() != "websocket"
                or "upgrade" not in (part.strip() for part in connection)
                or get("sec-websocket-version") != "13"
                or not get("sec-websocket-key") or not get("host")
                or (get("sec-fetch-site") not in _SAME_SITE and not get("origin"))):
            return None
        path, _, query = start.path.partition("?")
        try:  # the query parsed once (Tornado's request parses it, then deep-copies it)
            arguments = parse_qs_bytes(query, keep_blank_values=True,
                                       max_num_fields=_MAX_ARGUMENTS)
        except ValueError:
            return None
        line = RequestStartLine(start.method, path, start.version)
        try:  # it checks the Host header
            request = internals.upgrade_request(
                _LaneConnection(stream, context), line, start.path, query,
                internals.headers_of(pairs), arguments)
        except HTTPInputError:
            return None
        if self._resolve_client is not None:
            self._resolve_client(request)
        return request

    def _hand_back(self, stream: IOStream, head: bytes, context: Any,
                   http: Callable[[IOStream, Any], None]) -> None:
        """Returns head to the stream's read buffer and lets Tornado serve the connection."""
        if stream.closed():
            return
        stream.set_close_callback(None)
        internals.unread(stream, head)
        self.handed_back += 1
        http(stream, context)
