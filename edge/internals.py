"""Every private of Tornado the server reads or writes, but for its protocol subclass.

Tornado offers no public way to do what these small functions do: write a pre-framed message
straight to a stream's socket when nothing is queued (the fan-out's hot path), count what a
stream still has queued (slow consumers), give a request head back to a stream (the upgrade
lane), wait for an idle socket's bytes without a recv() that finds none, build headers without
a method call per field, register a listening socket with an accept handler of the server's
own, or leave out per-request state an idle socket would keep. The one other module that
touches Tornado's privates is edge/protocol.py, whose StrictProtocol overrides
WebSocketProtocol13's frame reader and writer. `check()` runs at start-up and names whatever a
Tornado upgrade removed.
"""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import tornado
import tornado.httputil
import tornado.util
from tornado.concurrent import Future
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.tcpserver import TCPServer
from tornado.web import RequestHandler
from tornado.websocket import WebSocketProtocol13, _PerMessageDeflateCompressor

__all__ = [
    "write_frame", "write_frames", "backlog", "lighten", "unread", "recv_now",
    "read_when_readable",
    "Headers", "headers_of", "upgrade_request", "break_cycles", "preset_handler",
    "shed_headers", "clear_response",
    "request_context", "add_listener", "stopped", "track", "check",
]

# IOStream attributes the fast path reads, and the read buffer unread() gives a head back to.
STREAM_INTERNALS = ("_total_write_index", "_total_write_done_index", "_write_futures", "socket",
                    "_read_buffer", "_read_buffer_size", "_read_bytes", "_read_partial",
                    "_read_future", "io_loop")
# Methods of Tornado's classes that this module and edge/protocol.py call or override.
METHOD_INTERNALS = ((RequestHandler, "detach"), (IOStream, "_start_read"),
                    (IOStream, "_add_io_state"), (IOStream, "_is_connreset"),
                    (RequestHandler, "_log"), (RequestHandler, "_break_cycles"),
                    (WebSocketProtocol13, "_read_bytes"), (WebSocketProtocol13, "_receive_frame"),
                    (WebSocketProtocol13, "_handle_message"), (tornado.util, "_websocket_mask"),
                    (WebSocketProtocol13, "_parse_extensions_header"),
                    (WebSocketProtocol13, "_challenge_response"),
                    (WebSocketProtocol13, "_create_compressors"),
                    (WebSocketProtocol13, "_write_frame"),
                    (WebSocketProtocol13, "_abort"),
                    (WebSocketProtocol13, "start_pinging"), (WebSocketProtocol13, "write_ping"),
                    (tornado.httputil, "_encode_header"),
                    (tornado.httputil, "_normalize_header"), (tornado.httputil, "_ABNF"))
# The two maps of Tornado's HTTPHeaders that headers_of() fills.
HEADERS_INTERNALS = ("_as_list", "_combined_cache")
# Attributes of Tornado's servers that add_listener(), stopped() and track() use.
SERVER_INTERNALS = ("_sockets", "_handlers", "_stopped", "_connections")
# The attribute of Tornado's permessage-deflate compressor edge/protocol.py reads (the window
# the handshake agreed).
COMPRESSOR_INTERNALS = ("_max_wbits",)


# -- streams: the fan-out's writes and backlog -------------------------------------------------

def write_frame(stream: IOStream, frame: bytes) -> bool:
    """Sends frame without waiting: straight to the socket when nothing is queued, else queued.

    A direct non-blocking send skips IOStream's per-write Future and bookkeeping, which is most
    of the cost of a fan-out. It is only safe when the stream's own buffer is empty, so bytes
    never overtake earlier ones; whatever the kernel does not take is queued on the stream.
    Errors close the stream, whose close callback unregisters the connection. Returns True
    when the frame went straight to the kernel, False when bytes were left queued (or the
    stream is closed), so the caller checks the backlog only then.
    """
    if stream.closed():
        return False
    if stream._total_write_index == stream._total_write_done_index:
        try:
            sent = stream.socket.send(frame)  # type: ignore[union-attr]  # open: checked above
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            stream.close(exc_info=exc)
            return False
        if sent == len(frame):
            return True
        frame = frame[sent:]
    stream.write(frame)
    return False


def write_frames(stream: IOStream, frames: list[bytes]) -> bool:
    """Sends several frames in one send() when nothing is queued; returns as write_frame does.

    Whatever the kernel does not take is queued frame by frame (the rest of a frame cut in
    the middle, then each whole frame), so the stream's queued writes still count messages.
    """
    if len(frames) == 1:
        return write_frame(stream, frames[0])
    if stream.closed():
        return False
    if stream._total_write_index == stream._total_write_done_index:
        data = b"".join(frames)
        try:
            sent = stream.socket.send(data)  # type: ignore[union-attr]  # open: checked above
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            stream.close(exc_info=exc)
            return False
        if sent == len(data):
            return True
        i = 0
        while sent >= len(frames[i]):
            sent -= len(frames[i])
            i += 1
        if sent:
            stream.write(frames[i][sent:])
            i += 1
        frames = frames[i:]
    for frame in frames:
        stream.write(frame)
    return False


def backlog(stream: IOStream) -> tuple[int, int]:
    """Returns (queued writes, unsent bytes) still waiting in the stream's buffer."""
    return len(stream._write_futures), stream._total_write_index - stream._total_write_done_index


class _Queue(list):
    """A list that also pops from the left: all IOStream asks of its two write deques, in a
    56-byte object where an empty deque takes over 600 (an idle socket's queues are empty,
    and a busy one's hold a few entries: the slow-consumer limit closes it past 256)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


def lighten(stream: IOStream) -> None:
    """Gives a new stream light write queues (see _Queue): about 1.4 KiB less per socket."""
    stream._write_futures = _Queue()  # type: ignore[assignment]
    stream._write_buffer._buffers = _Queue()  # type: ignore[assignment]


def unread(stream: IOStream, head: bytes) -> None:
    """Puts bytes already read back at the front of the stream's read buffer."""
    stream._read_buffer[:0] = head
    stream._read_buffer_size += len(head)


def recv_now(stream: IOStream, size: int) -> bytes | None:
    """One recv() of up to size bytes from the stream's socket, bypassing its read buffer
    (which the caller knows is empty): None when nothing has arrived; b"" when the stream is
    closed, and then closed as Tornado's own read would close it (at the end of the stream,
    or on a connection reset); any other error closes it and is raised, as Tornado's is."""
    try:
        data = stream.socket.recv(size)  # type: ignore[union-attr]
    except BlockingIOError:
        return None
    except OSError as exc:
        stream.close(exc_info=exc)
        if stream._is_connreset(exc):
            return b""
        raise
    if not data:
        stream.close()
    return data


def read_when_readable(stream: IOStream, size: int) -> Future[bytes]:
    """`stream.read_bytes(size, partial=True)`, but with nothing buffered it waits for the
    socket to be readable instead of first trying a recv(): a socket that has just been
    answered, or whose bytes were all just parsed, mostly has nothing (and Tornado's try
    allocates a 64 KiB buffer for it). A closed stream raises as read_bytes() does."""
    if stream._read_buffer_size or stream.closed():
        return stream.read_bytes(size, partial=True)
    if stream._read_future is not None:
        return stream._start_read()  # raises, as Tornado does for a second read
    # _start_read()'s Future, made on the stream's loop: Future() alone asks asyncio for the
    # running loop, a getpid() system call.
    future = stream._read_future = Future(loop=stream.io_loop.asyncio_loop)  # type: ignore[attr-defined]
    stream._read_bytes, stream._read_partial = size, True
    stream._add_io_state(IOLoop.READ)
    return future


# -- headers ---------------------------------------------------------------------------------

class Headers(tornado.httputil.HTTPHeaders):
    """HTTPHeaders with a get() that reads its two maps directly: the inherited one goes
    through Mapping.get() and __getitem__(), and an absent name costs a KeyError raised and
    caught. A handshake looks up about a dozen names, several of them absent (Origin,
    Sec-WebSocket-Protocol, ...). The same values: a name in the combined map is in the list
    map with the same value (add() and deletion drop it from the combined map)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        combined = self._combined_cache
        value = combined.get(name)
        if value is not None:
            return value
        header = tornado.httputil._normalize_header(name)
        value = combined.get(header)
        if value is not None:
            return value
        if header not in self._as_list:
            return default
        return self[header]


def headers_of(fields: Iterable[tuple[str, str]]) -> tornado.httputil.HTTPHeaders:
    """Returns HTTPHeaders holding fields, as setting each field in turn would (names in
    Http-Header-Case, a repeated name's last value), built as two dicts: Tornado's constructor
    goes through MutableMapping.update() and a method call per field, for every handshake's
    request and every handler's response. Values are taken as they are: the upgrade lane's
    pattern has checked them, or they are the server's own."""
    normal = tornado.httputil._normalize_header
    combined = {normal(name): value for name, value in fields}
    headers = Headers.__new__(Headers)
    headers._as_list = {name: [value] for name, value in combined.items()}
    headers._combined_cache = combined
    return headers


# -- requests --------------------------------------------------------------------------------

def upgrade_request(connection: Any, line: tornado.httputil.RequestStartLine, uri: str,
                    query: str, headers: tornado.httputil.HTTPHeaders,
                    arguments: dict[str, list[bytes]]) -> tornado.httputil.HTTPServerRequest:
    """Returns the request HTTPServerRequest(connection=, start_line=line, headers=) builds,
    with `uri` and the query already parsed (`arguments`) set on it: the same attributes, set
    in the same order (instances then share one key table), and the same Host checks, which
    raise HTTPInputError. Tornado's constructor parses the start line's query again and
    deep-copies what it parsed; `line.path` is the path alone, `uri` the path and query."""
    host = headers.get("Host")
    if host is None or not tornado.httputil._ABNF.host.fullmatch(host) or "," in host:
        raise tornado.httputil.HTTPInputError(f"Invalid Host header: {host!r}")
    request = tornado.httputil.HTTPServerRequest.__new__(tornado.httputil.HTTPServerRequest)
    request.method, request.uri, request.version = line.method, uri, line.version
    request.headers = headers
    request.body = b""
    context = getattr(connection, "context", None)
    request.remote_ip = getattr(context, "remote_ip", None)
    request.protocol = getattr(context, "protocol", "http")
    request.host = host
    request.host_name = tornado.httputil.split_host_and_port(host.lower())[0]
    request.files = {}
    request.connection = connection
    request.server_connection = None
    request._start_time = time.time()
    request._finish_time = None
    request.path, request.query = line.path, query
    request.arguments = arguments
    request.query_arguments = {name: list(values) for name, values in arguments.items()}
    request.body_arguments = {}
    return request


# -- request handlers ------------------------------------------------------------------------

def break_cycles(handler: RequestHandler) -> None:
    """Breaks the handler's reference cycle through its ui namespace, as finish() would."""
    handler._break_cycles()


def preset_handler(handler: RequestHandler) -> None:
    """Sets, as placeholders, the attributes Tornado's request path would add later.

    Called first thing in initialize(): CPython shares one key table among a class's instance
    dicts only while every instance adds its keys in the same order, before the table fills.
    """
    handler._transforms = []


def shed_headers(handler: RequestHandler, headers: tornado.httputil.HTTPHeaders) -> None:
    """Replaces the handler's response headers, which an upgraded socket never sends again."""
    handler._headers = headers


_SERVER = f"TornadoServer/{tornado.version}"
_HTML = "text/html; charset=UTF-8"
_DATE = [-1, ""]  # the current second and its Date header value


def clear_response(handler: RequestHandler) -> None:
    """RequestHandler.clear(), the same headers and state, with the Date header formatted once
    a second instead of for every handler (each handshake and request builds one)."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[0], _DATE[1] = now, tornado.httputil.format_timestamp(now)
    handler._headers = headers_of(
        (("Server", _SERVER), ("Content-Type", _HTML), ("Date", _DATE[1])))
    handler.set_default_headers()
    handler._write_buffer = []
    handler._status_code = 200
    handler._reason = "OK"


# -- servers ---------------------------------------------------------------------------------

def request_context(server: HTTPServer, stream: IOStream, address: Any) -> Any:
    """Returns the per-connection context Tornado's HTTP server gives each request."""
    return _HTTPRequestContext(stream, address, server.protocol, server.trusted_downstream)


def add_listener(server: TCPServer, sock: socket.socket, remove: Callable[[], None]) -> None:
    """Registers a listening socket whose accept handler the server added itself; `remove`
    takes that handler off the IOLoop when the server stops."""
    server._sockets[sock.fileno()] = sock
    server._handlers[sock.fileno()] = remove


def stopped(server: TCPServer) -> bool:
    """Tells whether stop() was called on the server."""
    return server._stopped


def track(server: HTTPServer, connection: Any) -> None:
    """Adds an HTTP connection to those close_all_connections() closes."""
    server._connections.add(connection)


# -- the start-up check ----------------------------------------------------------------------

def check() -> None:
    """Fails at start-up, naming the Tornado version, if an internal used here is gone."""
    missing = [f"{owner.__name__}.{name}" for owner, name in METHOD_INTERNALS
               if not callable(getattr(owner, name, None))]
    left, right = socket.socketpair()
    try:
        stream = IOStream(left)
        missing += [f"IOStream.{name}" for name in STREAM_INTERNALS if not hasattr(stream, name)]
        headers = tornado.httputil.HTTPHeaders()
        missing += [f"HTTPHeaders.{name}" for name in HEADERS_INTERNALS
                    if not isinstance(getattr(headers, name, None), dict)]
        if not isinstance(getattr(getattr(stream, "_write_buffer", None), "_buffers", None),
                          collections.deque):
            missing.append("IOStream._write_buffer._buffers")
        server = HTTPServer(lambda request: None)
        missing += [f"HTTPServer.{name}" for name in SERVER_INTERNALS
                    if not hasattr(server, name)]
        line = tornado.httputil.RequestStartLine("GET", "/ws", "HTTP/1.1")
        fields = tornado.httputil.HTTPHeaders({"Host": "example.com"})
        tornados = vars(tornado.httputil.HTTPServerRequest(start_line=line, headers=fields))
        try:
            built = vars(upgrade_request(None, line, "/ws?a=1", "a=1", fields, {"a": [b"1"]}))
        except AttributeError:  # the Host pattern (_ABNF.host)
            built = {}
        if list(built) != list(tornados):
            missing.append(f"HTTPServerRequest's attributes as upgrade_request() sets them "
                           f"({', '.join(tornados)})")
        compressor = _PerMessageDeflateCompressor(False, 9)
        missing += [f"_PerMessageDeflateCompressor.{name}" for name in COMPRESSOR_INTERNALS
                    if getattr(compressor, name, None) != 9]
    finally:
        left.close()
        right.close()
    if missing:
        raise RuntimeError(
            f"Tornado {tornado.version} lacks {', '.join(missing)}, which the server's edge "
            "(edge/internals.py, edge/protocol.py) relies on; install a Tornado from "
            "requirements.txt (6.6.x)"
        )
