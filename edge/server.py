"""The HTTP server: connection cap, accept back-off on fd exhaustion, head and idle timeouts."""

from __future__ import annotations

import errno
import logging
import resource
import socket
from collections.abc import Iterable
from typing import Any

from tornado.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from config import Settings
from edge import internals
from edge.lane import UpgradeLane

__all__ = ["EdgeServer", "default_max_connections", "FD_HEADROOM"]

log = logging.getLogger("server")

FD_HEADROOM = 100  # descriptors kept for the database pool, logs, static files and the listener
BACKOFF_MIN, BACKOFF_MAX = 0.1, 1.0  # seconds accept pauses after EMFILE/ENFILE
LOG_INTERVAL = 10.0  # at most one "out of descriptors"/"at the cap" line per interval
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def default_max_connections() -> int:
    """Returns the soft RLIMIT_NOFILE minus headroom (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - FD_HEADROOM)


class _ConnectionParameters:
    """One connection's parameters: the head timeout for its first request, idle after that.

    Every other parameter is read from the server's shared HTTP1ConnectionParameters, so an
    idle socket keeps four slots here instead of a copy of the whole parameter set.
    """

    __slots__ = ("_base", "head", "idle", "requests")

    def __init__(self, base: HTTP1ConnectionParameters, head: float, idle: float) -> None:
        self._base, self.head, self.idle, self.requests = base, head, idle, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    @property
    def header_timeout(self) -> float:  # type: ignore[override]
        """Seconds to wait for a request head: short on a new connection, idle when reused."""
        return self.head if self.requests <= 1 else self.idle


class _CountedStream(IOStream):
    """An IOStream that tells its server when its socket closes; it also carries a refusal
    from the upgrade lane to the handler Tornado builds for the same request."""

    # Accepted from a listening socket with TCP_NODELAY set (EdgeServer.add_sockets): the
    # kernel copies the option to each socket it accepts, so nobody needs to set it again.
    nodelay = True

    def __init__(self, server: EdgeServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        internals.lighten(self)
        self._server = server
        self.refusal: Exception | None = None

    def close_fd(self) -> None:
        # The error a read or write met (a reset, a broken pipe) stays on the stream, for the
        # StreamClosedError its waiters get; its traceback holds the frame that caught it,
        # whose `self` is this stream: a cycle only a full collection would free.
        if self.error is not None:
            self.error.__traceback__ = None
        super().close_fd()
        self._server.stream_closed()


class EdgeServer(HTTPServer):
    """HTTPServer with a cap on open sockets, accept back-off, a separate head timeout and
    the upgrade lane for WebSocket handshakes (edge/lane.py).

    `upgrade_route` is the (path, handler class, kwargs) of the WebSocket route the lane
    serves; without it every request goes through Tornado's HTTP/1.1 connection.
    """

    def initialize(self, *args: Any, settings: Settings,  # type: ignore[override]
                   upgrade_route: tuple | None = None, **kwargs: Any) -> None:
        super().initialize(
            *args, idle_connection_timeout=settings.idle_timeout,
            body_timeout=settings.body_timeout, max_body_size=settings.max_body_size, **kwargs)
        self.head_timeout = settings.header_timeout
        self.idle_timeout = settings.idle_timeout
        self.max_connections = settings.max_connections or default_max_connections()
        self.send_buffer = settings.socket_send_buffer
        self.open_sockets = 0
        self.closed_sockets = 0  # cumulative, read by the memory housekeeper
        self.refused = 0
        self._last_log = {"cap": -LOG_INTERVAL, "fds": -LOG_INTERVAL}
        self._backoff = BACKOFF_MIN
        self._paused: dict[int, socket.socket] = {}
        self.lane = (UpgradeLane(self.request_callback, upgrade_route,  # type: ignore[arg-type]
                                 head_timeout=self.head_timeout,
                                 max_head=self.conn_params.max_header_size or 65536)
                     if upgrade_route is not None else None)

    # -- accepting -----------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Accepts on sockets with this server's own handler (back-off and cap). TCP sockets
        get TCP_NODELAY (events leave at once) and --socket-send-buffer's SO_SNDBUF (a stalled
        client costs little kernel memory), which every socket they accept inherits."""
        for sock in sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.send_buffer:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            internals.add_listener(self, sock, self._watch(sock))

    def _watch(self, sock: socket.socket) -> Any:
        loop = IOLoop.current()
        loop.add_handler(sock, lambda fd, events: self._accept(sock), IOLoop.READ)

        def remove() -> None:
            self._paused.pop(sock.fileno(), None)
            try:
                loop.remove_handler(sock)
            except (KeyError, ValueError):
                pass

        return remove

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(128):
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                self._backoff = BACKOFF_MIN
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                self._pause(sock, exc)
                return
            if self.open_sockets >= self.max_connections:
                self._refuse(connection)
                continue
            self._serve_accepted(connection, address)

    def _refuse(self, connection: socket.socket) -> None:
        """Closes a connection over the cap at once (RST, no buffers kept)."""
        self.refused += 1
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        except OSError:
            pass
        connection.close()
        self._log_once("cap", "at --max-connections=%d: refusing new connections (%d so far)",
                       self.max_connections, self.refused)

    def _pause(self, sock: socket.socket, exc: OSError) -> None:
        """Stops accepting for a moment instead of failing on every loop turn."""
        loop = IOLoop.current()
        loop.remove_handler(sock)
        self._paused[sock.fileno()] = sock
        self._log_once("fds", "accept failed (%s): pausing new connections, %d open",
                       exc.strerror, self.open_sockets)
        loop.call_later(self._backoff, self._resume, sock)
        self._backoff = min(BACKOFF_MAX, self._backoff * 2)

    def _resume(self, sock: socket.socket) -> None:
        if self._paused.pop(sock.fileno(), None) is not None and not internals.stopped(self):
            IOLoop.current().add_handler(sock, lambda fd, events: self._accept(sock), IOLoop.READ)

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        now = IOLoop.current().time()
        if now - self._last_log[key] >= LOG_INTERVAL:
            self._last_log[key] = now
            log.warning(message, *args)

    def _serve_accepted(self, connection: socket.socket, address: Any) -> None:
        self.open_sockets += 1
        try:
            stream = _CountedStream(self, connection, max_buffer_size=self.max_buffer_size,
                                    read_chunk_size=self.read_chunk_size)
        except Exception:
            self.open_sockets -= 1
            connection.close()
            raise
        self.handle_stream(stream, address)

    def stream_closed(self) -> None:
        """Counts a closed client socket."""
        self.open_sockets -= 1
        self.closed_sockets += 1

    # -- per-connection timeouts -----------------------------------------------------------

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        context = internals.request_context(self, stream, address)
        if self.lane is not None:
            self.lane.serve(stream, context, self.serve_http)
        else:
            self.serve_http(stream, context)

    def serve_http(self, stream: IOStream, context: Any) -> None:
        """Serves a connection's requests with Tornado's HTTP/1.1 connection."""
        params = _ConnectionParameters(self.conn_params, self.head_timeout, self.idle_timeout)
        conn = HTTP1ServerConnection(stream, params, context)
        internals.track(self, conn)
        conn.start_serving(self)

    async def close_all_connections(self) -> None:
        """Closes Tornado's HTTP connections, then the handshakes the upgrade lane is serving
        (open WebSockets are the hub's to close: it says goodbye with 1001 at shutdown)."""
        await super().close_all_connections()
        if self.lane is not None:
            await self.lane.close()

    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        params = getattr(server_conn, "params", None)
        if isinstance(params, _ConnectionParameters):
            params.requests += 1
        return super().start_request(server_conn, request_conn)
