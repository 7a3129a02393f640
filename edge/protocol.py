"""Tornado's WebSocket protocol, failing protocol errors with the RFC 6455 close codes."""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import Awaitable
from typing import Any

from tornado.concurrent import Future
from tornado.httputil import HTTPHeaders, _encode_header
from tornado.iostream import StreamClosedError
from tornado.util import _websocket_mask
from tornado.websocket import (
    _FRAME_YIELD_COST,
    _YIELD_THRESHOLD,
    WebSocketHandler,
    WebSocketProtocol13,
    _WebSocketParams,
)

from edge import internals
from hub import deflate
from hub.disconnect import INVALID_UTF8, PROTOCOL_ERROR, Close, valid_peer_code

__all__ = ["StrictProtocol", "strict_protocol", "frame_problem", "close_problem"]

_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
_KNOWN_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})
_READ_CHUNK = 65536  # at least this much is asked of the stream per read (all it has, up to)


def frame_problem(b0: int, b1: int, *, compression: bool, fragmented: bool) -> str | None:
    """Returns why a client frame header violates RFC 6455, or None if it is acceptable."""
    opcode, control = b0 & 0x0F, b0 & 0x08
    reserved = b0 & 0x70
    if compression and opcode != 0 and not control:
        reserved &= ~0x40  # RSV1 marks a compressed message (permessage-deflate)
    if reserved:
        return "reserved bits set"
    if opcode not in _KNOWN_OPCODES:
        return f"unknown opcode {opcode}"
    if not b1 & 0x80:
        return "client frames must be masked"
    if control and not b0 & 0x80:
        return "fragmented control frame"
    if control and (b1 & 0x7F) > 125:
        return "control frame payload over 125 bytes"
    if opcode == 0 and not fragmented:
        return "continuation frame without a message to continue"
    if opcode in (0x1, 0x2) and fragmented:
        return "new message before the fragmented one finished"
    return None


def close_problem(payload: bytes) -> Close | None:
    """Returns the close to answer with if a received close frame is malformed, else None."""
    if not payload:
        return None
    if len(payload) == 1:
        return PROTOCOL_ERROR.detail("close payload of one byte")
    code = struct.unpack(">H", payload[:2])[0]
    if not valid_peer_code(code):
        return PROTOCOL_ERROR.detail(f"invalid close code {code}")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return INVALID_UTF8.detail("close reason")
    return None


class StrictProtocol(WebSocketProtocol13):
    """Checks each frame header, text payload and close frame before Tornado handles it.

    This class reads the two header bytes first, fails the connection (close frame with the
    RFC code, then the socket) on a violation, and parses a whole final uncompressed text or
    binary frame itself; Tornado's reader, fed from the same buffer through _read_bytes, does
    the rest (compressed and fragmented messages, control frames). It also narrows Tornado's
    permessage-deflate handshake to the no-context-takeover answer of hub.deflate.
    """

    # Bytes taken from the stream and not yet parsed: _inbuf[_inpos:]. Reading everything the
    # stream holds at once leaves its buffer empty, so it never toggles its epoll interest
    # off and on again per message, and a frame already read is parsed without awaiting.
    # Slots, not instance-dict keys: Tornado's 29 attributes are as many as CPython 3.11 lets
    # instances share one key table, and two more gave every socket that had sent a message
    # an unshared dict (1.3 KiB more).
    __slots__ = ("_inbuf", "_inpos")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inbuf, self._inpos = b"", 0

    async def _read_bytes(self, n: int) -> bytes:
        buf, pos = self._inbuf, self._inpos
        end = pos + n
        if end > len(buf):
            buf, pos, end = buf[pos:], 0, n
            buf += await self.stream.read_bytes(max(n - len(buf), _READ_CHUNK), partial=True)
            if len(buf) < n:  # a frame larger than one read: gather the rest, then join once
                buf = await self._read_rest(buf, n)
        self._keep(buf, end)
        self._wire_bytes_in += n
        return buf[pos:end]

    async def _read_rest(self, head: bytes, n: int) -> bytes:
        """Returns head and what the stream delivers next, n bytes or more, joined once (adding
        each read to the bytes so far copied a 16 MiB frame some hundred times over)."""
        parts, size = [head], len(head)
        while size < n:
            part = await self.stream.read_bytes(max(n - size, _READ_CHUNK), partial=True)
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    def _keep(self, buf: bytes, pos: int) -> None:
        """Keeps what is left of buf from pos; an idle socket keeps no bytes at all."""
        if pos == len(buf):
            self._inbuf, self._inpos = b"", 0
        else:
            self._inbuf, self._inpos = buf, pos

    async def _receive_frame(self) -> None:
        header = await self._read_bytes(2)
        problem = frame_problem(header[0], header[1], compression=self._decompressor is not None,
                                fragmented=self._fragmented_message_buffer is not None)
        if problem:
            self._fail(PROTOCOL_ERROR.detail(problem))
            return
        if header[0] & 0xCF in (0x81, 0x82):  # final text or binary, not compressed (RSV1)
            data = self._buffered_payload(header[1])
            if data is not None:  # a whole unfragmented message was already read
                handled = self._on_message(data, text=header[0] & 0x0F == 0x1)
                if handled is not None:
                    await handled
                return
        # Tornado's reader reads the header again: the position steps back over it where it
        # is still in the buffer (copying the rest of the buffer per frame made a message cut
        # into small frames cost time quadratic in what one read brings).
        if self._inpos >= 2:
            self._inpos -= 2
        else:
            self._inbuf, self._inpos = header + self._inbuf[self._inpos:], 0
        self._wire_bytes_in -= 2
        compressed = self._frame_compressed
        await super()._receive_frame()
        if header[0] & 0x08 and self._fragmented_message_buffer is not None:
            # Tornado clears the flag for any control frame, even one interleaved in a
            # fragmented compressed message, which then would not be inflated.
            self._frame_compressed = compressed

    def _buffered_payload(self, b1: int) -> bytes | None:
        """Returns the unmasked payload of the current frame if all of it was already read,
        else None (nothing consumed).

        Only for a final, masked, uncompressed text or binary frame whose header passed
        frame_problem(); Tornado's reader handles every other frame, and oversized ones.
        """
        buf, pos = self._inbuf, self._inpos
        length, start = b1 & 0x7F, pos + 4
        if length == 127:
            return None
        if length == 126:
            if len(buf) < pos + 2:
                return None
            length, start = struct.unpack_from("!H", buf, pos)[0], pos + 6
        end = start + length
        if length > self.params.max_message_size or len(buf) < end:
            return None
        self._keep(buf, end)
        self._wire_bytes_in += end - pos
        return _websocket_mask(buf[start - 4:start], buf[start:end])

    def _on_message(self, data: bytes, text: bool) -> Awaitable[None] | None:
        """Checks a message and calls on_message, returning its coroutine to be awaited in
        place: Tornado's _handle_message would decode a text again and wrap it in a Task."""
        if self.client_terminated:
            return None
        message: str | bytes = data
        if text:
            try:
                message = data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(INVALID_UTF8.detail("text message"))
                return None
        self._message_bytes_in += len(data)
        try:
            return self.handler.on_message(message)
        except Exception:
            self.handler.log_exception(*sys.exc_info())
            self._abort()
            return None

    async def _accept_connection(self, handler: WebSocketHandler) -> None:
        """Tornado's accept, answering the upgrade with one 101 response built here.

        Tornado's own answer goes through RequestHandler.finish(): header objects, output
        transforms, its HTTP/1.1 writer and three TCP_NODELAY toggles, a large share of what
        a handshake costs. This response carries the same headers (the WebSocket ones, then
        the application's Date and security headers); the handler's open(head) gets it to
        write before anything else (with its welcome, in one send()). The handler's access
        log line and request metrics are as before.
        """
        request = handler.request
        offered = request.headers.get("Sec-WebSocket-Protocol")
        self.selected_subprotocol = handler.select_subprotocol(
            [s.strip() for s in offered.split(",")] if offered else [])
        head = [_SWITCHING, b"Sec-WebSocket-Accept: ",
                self._challenge_response(handler).encode("ascii"), b"\r\n"]
        if self.selected_subprotocol:  # one of the handler's own names
            head += (b"Sec-WebSocket-Protocol: ", self.selected_subprotocol.encode("ascii"),
                     b"\r\n")
        for name, params in self._parse_extensions_header(request.headers):  # at most one
            self._create_compressors("server", params, self._compression_options)
            head += (b"Sec-WebSocket-Extensions: ", _encode_header(name, params).encode("ascii"),
                     b"\r\n")
        upgrade_headers = getattr(handler.application, "upgrade_headers", None)
        head.append(upgrade_headers() if upgrade_headers is not None else b"\r\n")
        handler.set_status(101)
        # RequestHandler.detach(), not Tornado's _detach_stream(), which also plants seven
        # guard attributes (write, finish, ...) on the handler, about 1.5 KiB per idle socket;
        # a handler served by this protocol never calls those after the upgrade.
        self.stream = handler.detach()
        handler._log()
        self.start_pinging()
        try:
            # Passed, not kept: these objects carry 29 attributes, as many as CPython 3.11 lets
            # instances share one key table; one more would cost each socket ~1.3 KiB.
            opened = handler.open(b"".join(head), *handler.open_args, **handler.open_kwargs)
            if opened is not None:
                await opened
        except Exception:
            handler.log_exception(*sys.exc_info())
            self._abort()
            return
        self._listen()

    # -- reading: a task while there are bytes to parse, none while the socket is idle -------
    # Tornado's _receive_frame_loop awaits the next read forever: every idle socket keeps a
    # task and the chain of coroutine frames that accepted it (about 2.5 KiB). Here an idle
    # socket keeps one read future with a callback; the bytes it brings start a task that
    # parses frames until nothing is buffered, then waits idle again.

    def _listen(self) -> None:
        """Waits for the client's next bytes, idle: no task, no coroutine frame."""
        try:
            future = internals.read_when_readable(self.stream, _READ_CHUNK)
        except StreamClosedError:
            self._abort()
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)
            return
        future.add_done_callback(self._arrived)

    def _arrived(self, future: Future[bytes]) -> None:
        """Parses what arrived, in a task (a message's handler may await)."""
        # Asked, not raised: raising the future's error would put this frame, which holds
        # the future, in the error's traceback, a cycle only a full collection frees.
        if future.cancelled() or future.exception() is not None:
            # The stream closed while the socket was idle.
            self._abort()
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)
            return
        self._inbuf, self._inpos = future.result(), 0
        asyncio.ensure_future(self._parse())

    async def _parse(self) -> None:
        """Tornado's frame loop until nothing is left buffered; then listens again."""
        idle = False
        try:
            work = 0  # yields to other callbacks after a while, as Tornado's loop does
            while not self.client_terminated:
                start = self._wire_bytes_in
                await self._receive_frame()
                if self._inpos >= len(self._inbuf):
                    idle = not self.client_terminated
                    break
                work += _FRAME_YIELD_COST + self._wire_bytes_in - start
                if work >= _YIELD_THRESHOLD:
                    work = 0
                    await asyncio.sleep(0)
        except StreamClosedError:
            self._abort()
        finally:
            if not idle:  # the connection ended (or failed): as Tornado's loop ends
                self.handler.on_ws_connection_close(self.close_code, self.close_reason)
        if idle:
            self._listen()

    def _write_frame(self, fin: bool, opcode: int, data: bytes, flags: int = 0) -> Any:
        """Writes a frame of Tornado's own (pong, ping, close) after the handler's
        `before_frame(opcode)`: it writes what it holds for the iteration's last send() (the
        101 response and the welcome may still be held when a ping pipelined behind the
        upgrade request is answered), and stops the hub writing to the stream itself once a
        close frame is on its way."""
        before_frame = getattr(self.handler, "before_frame", None)
        if before_frame is not None:
            before_frame(opcode)
        return super()._write_frame(fin, opcode, data, flags)

    @property
    def compressing(self) -> bool:
        """Whether permessage-deflate was agreed in the handshake."""
        return self._compressor is not None

    @property
    def deflate_window(self) -> int:
        """The window, in bits, the agreed permessage-deflate lets this server compress with
        (its answer's server_max_window_bits, else 15); 0 when compression was not agreed."""
        compressor = self._compressor
        return compressor._max_wbits if compressor is not None else 0

    def ping(self) -> None:
        """Sends a ping for the shared heartbeat, which checks pong_received at its deadline."""
        self._received_pong = False
        self.write_ping(b"")

    @property
    def pong_received(self) -> bool:
        """Whether a pong came back since the last ping()."""
        return self._received_pong

    def start_pinging(self) -> None:
        """Puts the socket on the application's shared ping wheel (edge/heartbeat.py)
        when the handler offers one, instead of a ping task of its own; the wheel's Beat sits
        where Tornado keeps that task, which cancels it when the socket closes."""
        heartbeat = getattr(self.handler, "heartbeat", None)
        if heartbeat is None:
            super().start_pinging()
        elif not self._ping_coroutine and self.ping_interval > 0:
            self._ping_coroutine = heartbeat.join(self)  # type: ignore[assignment]

    def _parse_extensions_header(self, headers: HTTPHeaders) -> list[tuple[str, dict[str, Any]]]:
        """Returns the one extension Tornado's handshake answers with: permessage-deflate with
        no context takeover when the client offered it acceptably (hub.deflate), else none."""
        if self._compression_options is None:
            return []
        return deflate.accept_offer(super()._parse_extensions_header(headers))

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self.client_terminated:
            return None
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(INVALID_UTF8.detail("text message"))
                return None
        if opcode == 0x8:
            problem = close_problem(data)
            if problem:
                self._fail(problem)
                return None
        return super()._handle_message(opcode, data)

    def _fail(self, close: Close) -> None:
        """Fails the connection: sends a close frame with its code, then drops the socket."""
        self.close(*close)
        self._abort()


def strict_protocol(handler: WebSocketHandler) -> StrictProtocol | None:
    """Returns the strict protocol for a handler's upgrade request (version 13 only)."""
    if handler.request.headers.get("Sec-WebSocket-Version") != "13":
        return None
    params = _WebSocketParams(
        ping_interval=handler.ping_interval, ping_timeout=handler.ping_timeout,
        max_message_size=handler.max_message_size,
        compression_options=handler.get_compression_options())
    return StrictProtocol(handler, False, params)
