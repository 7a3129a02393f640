"""The Tornado internals the edge uses: stream writes against a real IOStream, the start-up
check; and text framing."""

from __future__ import annotations

import asyncio
import re
import socket
import struct

import pytest
from tornado.iostream import IOStream

from edge import internals
from edge.internals import backlog, check, headers_of, unread, write_frame, write_frames
from hub.events import frame_text


@pytest.fixture
def pair(io_loop):
    """An IOStream over one end of a socketpair, and the raw peer socket."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    stream = IOStream(ours)
    yield stream, peer
    stream.close()
    peer.close()


def drain(peer: socket.socket) -> bytes:
    """Reads whatever the peer socket has right now without blocking."""
    chunks = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def read_exactly(peer: socket.socket, size: int, timeout: float = 10.0) -> bytes:
    """Reads size bytes from the peer, yielding to the IOLoop so the stream can flush."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    data = bytearray()
    while len(data) < size:
        assert loop.time() < deadline, f"only {len(data)} of {size} bytes arrived"
        data += drain(peer)
        await asyncio.sleep(0.001)
    return bytes(data)


def fill_kernel_buffer(stream: IOStream) -> int:
    """Writes directly to the socket until the kernel refuses more; returns bytes written."""
    total = 0
    chunk = b"\0" * 65536
    while True:
        try:
            sent = stream.socket.send(chunk)
        except BlockingIOError:
            return total
        total += sent


@pytest.mark.gen_test
async def test_empty_buffer_sends_straight_to_the_socket(pair):
    """With nothing queued, write_frame hands the bytes to the kernel and bypasses the stream."""
    stream, peer = pair
    frame = frame_text(b'{"type":"x"}')
    assert write_frame(stream, frame) is True
    assert stream._total_write_index == 0
    assert backlog(stream) == (0, 0)
    assert await read_exactly(peer, len(frame)) == frame


@pytest.mark.gen_test
async def test_full_socket_queues_the_rest_on_the_stream(pair):
    """When the peer is not reading, the unsent remainder is queued and reported as backlog."""
    stream, peer = pair
    frame = frame_text(b"a" * 200_000)
    assert write_frame(stream, frame) is False
    queued, unsent = backlog(stream)
    assert queued == 1 and 0 < unsent < len(frame)
    second = frame_text(b"b" * 1000)
    assert write_frame(stream, second) is False
    assert backlog(stream) == (2, unsent + len(second))
    assert await read_exactly(peer, len(frame) + len(second)) == frame + second
    assert backlog(stream) == (0, 0)


@pytest.mark.gen_test
async def test_queued_bytes_are_never_overtaken_by_a_direct_send(pair):
    """Once bytes are queued, later frames queue behind them even if the kernel has room again."""
    stream, peer = pair
    filler = fill_kernel_buffer(stream)
    first = frame_text(b"1" * 5000)
    assert write_frame(stream, first) is False
    assert backlog(stream)[1] == len(first)
    head = drain(peer)  # room in the kernel now, but the stream has not flushed yet
    assert head and stream._total_write_index != stream._total_write_done_index
    frames = [frame_text(str(n).encode() * 300) for n in range(2, 6)]
    index = stream._total_write_index
    assert write_frame(stream, frames[0]) is False  # went through the stream, behind `first`
    assert stream._total_write_index == index + len(frames[0])
    for frame in frames[1:]:
        write_frame(stream, frame)
    expected = first + b"".join(frames)
    rest = await read_exactly(peer, filler - len(head) + len(expected))
    assert (head + rest)[filler:] == expected


@pytest.mark.gen_test
async def test_many_small_frames_arrive_in_order(pair):
    """A burst of frames mixing direct sends and queued writes arrives in publish order."""
    stream, peer = pair
    frames = [frame_text(f"message-{n:05d}".encode() * 40) for n in range(2000)]
    direct = sum(write_frame(stream, frame) for frame in frames)
    assert 0 < direct < len(frames)  # some went straight to the kernel, the rest queued
    assert await read_exactly(peer, sum(map(len, frames))) == b"".join(frames)


@pytest.mark.gen_test
async def test_write_frames_sends_a_batch_in_one_call_when_the_kernel_takes_it(pair):
    """Several frames go to the kernel as one send and arrive concatenated, in order."""
    stream, peer = pair
    frames = [frame_text(f"event-{n}".encode()) for n in range(20)]
    assert write_frames(stream, frames) is True
    assert backlog(stream) == (0, 0)
    assert await read_exactly(peer, sum(map(len, frames))) == b"".join(frames)


@pytest.mark.gen_test
async def test_write_frames_queues_what_is_left_one_write_per_message(pair):
    """A batch the kernel takes only in part leaves one queued write per unsent message."""
    stream, peer = pair
    frames = [frame_text(bytes([65 + n % 26]) * 6000) for n in range(40)]  # ~240 KB
    assert write_frames(stream, frames) is False
    queued, unsent = backlog(stream)
    assert 0 < unsent < sum(map(len, frames))
    # The messages not fully sent are each one queued write (the cut one included).
    tail, n = 0, 0
    for frame in reversed(frames):
        if tail >= unsent:
            break
        tail += len(frame)
        n += 1
    assert queued == n
    later = frame_text(b"later")
    assert write_frames(stream, [later, later]) is False  # queued behind, never overtaking
    expected = b"".join(frames) + later + later
    assert await read_exactly(peer, len(expected)) == expected


@pytest.mark.gen_test
async def test_closed_stream_returns_false_without_raising(pair):
    """Writing to a stream that is already closed is a no-op that reports False."""
    stream, _ = pair
    stream.close()
    assert write_frame(stream, frame_text(b"late")) is False


@pytest.mark.gen_test
async def test_peer_gone_closes_stream_without_raising(pair):
    """A send error (peer went away) closes the stream instead of raising into the fan-out."""
    stream, peer = pair
    peer.close()
    results = [write_frame(stream, frame_text(b"x" * 100)) for _ in range(3)]
    assert results[-1] is False
    assert stream.closed()
    assert isinstance(stream.error, OSError)


def parse_header(frame: bytes) -> tuple[int, int, int]:
    """Returns (first byte, payload length, header size) of an unmasked frame."""
    first, second = frame[0], frame[1]
    assert second & 0x80 == 0, "server frames must not be masked"
    length = second & 0x7F
    if length == 126:
        return first, struct.unpack("!H", frame[2:4])[0], 4
    if length == 127:
        return first, struct.unpack("!Q", frame[2:10])[0], 10
    return first, length, 2


@pytest.mark.parametrize(
    ("size", "header_size"),
    [(0, 2), (1, 2), (125, 2), (126, 4), (1000, 4), (65535, 4), (65536, 10), (200_000, 10)],
)
def test_frame_text_header_encodes_length(size, header_size):
    """frame_text makes one final text frame with the 7-, 16- or 64-bit length RFC 6455 requires."""
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = frame_text(payload)
    first, length, parsed_header = parse_header(frame)
    assert first == 0x81  # FIN + opcode 1 (text)
    assert (length, parsed_header) == (size, header_size)
    assert frame[header_size:] == payload


# -- the Tornado internals the fast path relies on --------------------------------------------


def test_installed_tornado_has_every_internal_the_fast_path_uses():
    """The start-up check passes on the Tornado that requirements.txt installs (pinned 6.6.x)."""
    import tornado

    assert tornado.version.startswith("6.6.")
    check()


def test_missing_stream_internal_fails_naming_the_tornado_version(monkeypatch):
    """If a future Tornado drops a stream attribute, start-up fails with the version named."""
    import tornado

    monkeypatch.setattr(internals, "STREAM_INTERNALS", (*internals.STREAM_INTERNALS, "_gone"))
    with pytest.raises(RuntimeError, match=rf"Tornado {re.escape(tornado.version)} lacks "
                                           r"IOStream\._gone"):
        check()


def test_missing_handler_method_fails_naming_it(monkeypatch):
    """If RequestHandler loses _break_cycles, start-up fails naming that method."""
    from tornado.web import RequestHandler

    monkeypatch.delattr(RequestHandler, "_break_cycles")
    with pytest.raises(RuntimeError, match=r"RequestHandler\._break_cycles"):
        check()


def test_missing_server_internal_fails_naming_it(monkeypatch):
    """If Tornado's servers lose an attribute the accept handler registers with, start-up
    fails naming it."""
    monkeypatch.setattr(internals, "SERVER_INTERNALS", (*internals.SERVER_INTERNALS, "_gone"))
    with pytest.raises(RuntimeError, match=r"HTTPServer\._gone"):
        check()


def test_missing_compressor_internal_fails_naming_it(monkeypatch):
    """If Tornado's permessage-deflate compressor stops keeping its window where the protocol
    reads it, start-up fails naming it."""
    monkeypatch.setattr(internals, "COMPRESSOR_INTERNALS",
                        (*internals.COMPRESSOR_INTERNALS, "_gone"))
    with pytest.raises(RuntimeError, match=r"_PerMessageDeflateCompressor\._gone"):
        check()


@pytest.mark.gen_test
async def test_unread_bytes_are_read_again_before_what_the_socket_brings(pair):
    """A head given back to the stream is read first, then the bytes still on the socket."""
    stream, peer = pair
    peer.send(b"world\n")
    first = await stream.read_until(b"\n")
    assert first == b"world\n"
    unread(stream, b"hello ")
    peer.send(b"again\n")
    assert await stream.read_until(b"\n") == b"hello again\n"


def test_headers_of_holds_what_setting_each_field_holds():
    """The same maps, keys in the same order, names in Http-Header-Case, a repeated name's
    last value; and the result behaves as Tornado's own afterwards (add, set, delete)."""
    from tornado.httputil import HTTPHeaders

    fields = [("host", "example.com"), ("sec-WebSocket-key", "dGhlIHNhbXBsZQ=="),
              ("X-Forwarded-For", "10.0.0.1"), ("HOST", "other.example"), ("upgrade", "")]
    ours, tornados = headers_of(fields), HTTPHeaders()
    for name, value in fields:
        tornados[name] = value
    assert vars(ours) == vars(tornados)
    assert list(ours._as_list) == ["Host", "Sec-Websocket-Key", "X-Forwarded-For", "Upgrade"]
    assert ours["host"] == "other.example" and ours.get("Upgrade") == ""
    for headers in (ours, tornados):
        headers.add("X-Forwarded-For", "10.0.0.2")
        headers["Upgrade"] = "websocket"
        del headers["Host"]
    assert vars(ours) == vars(tornados)
    assert ours["X-Forwarded-For"] == "10.0.0.1,10.0.0.2"
    assert list(ours.get_all()) == list(tornados.get_all())


def test_missing_headers_internal_fails_naming_it(monkeypatch):
    monkeypatch.setattr(internals, "HEADERS_INTERNALS", (*internals.HEADERS_INTERNALS, "_gone"))
    with pytest.raises(RuntimeError, match=r"HTTPHeaders\._gone"):
        check()


def test_a_request_layout_upgrade_request_does_not_match_fails_naming_it(monkeypatch):
    """A Tornado whose request sets an attribute upgrade_request() does not is named."""
    import tornado.httputil

    original = tornado.httputil.HTTPServerRequest.__init__

    def one_more(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.trailers = None

    monkeypatch.setattr(tornado.httputil.HTTPServerRequest, "__init__", one_more)
    with pytest.raises(RuntimeError, match=r"HTTPServerRequest's attributes .*trailers"):
        check()


def _handler(cls: type) -> object:
    """A handler of cls for a GET / over a connection that is never written to."""
    from unittest import mock

    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
    from tornado.web import Application

    request = HTTPServerRequest(connection=mock.Mock(), headers=HTTPHeaders({"Host": "x"}),
                                start_line=RequestStartLine("GET", "/", "HTTP/1.1"))
    return cls(Application(), request)


def test_clear_response_leaves_what_tornados_clear_leaves(monkeypatch):
    """The same headers (Date made once a second) and the same state, set in the same order
    (instances of a class share one key table only while they add keys in one order)."""
    from tornado.web import RequestHandler

    from handlers.base import ErrorEnvelopeMixin

    monkeypatch.setattr("time.time", lambda: 1_700_000_000.75)  # Tornado's clock too
    ours, tornados = _handler(ErrorEnvelopeMixin), _handler(RequestHandler)
    ours.set_status(404)
    ours.set_header("X-Thing", "1")
    ours.write("body")
    ours.clear()
    assert list(vars(ours)) == list(vars(tornados))
    assert sorted(ours._headers.get_all()) == sorted(tornados._headers.get_all())
    assert ours._headers["Date"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert (ours._write_buffer, ours.get_status(), ours._reason) == ([], 200, "OK")


def test_clear_response_formats_the_date_again_each_second(monkeypatch):
    from handlers.base import ErrorEnvelopeMixin

    now = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: now[0])
    handler = _handler(ErrorEnvelopeMixin)
    assert handler._headers["Date"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    now[0] += 0.99
    handler.clear()
    assert handler._headers["Date"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    now[0] += 0.02
    handler.clear()
    assert handler._headers["Date"] == "Tue, 14 Nov 2023 22:13:21 GMT"


@pytest.mark.gen_test
async def test_read_when_readable_waits_without_a_recv_then_returns_what_arrives(pair):
    stream, peer = pair
    tries = []
    read_from_fd = stream.read_from_fd
    stream.read_from_fd = lambda buf: tries.append(len(buf)) or read_from_fd(buf)
    future = internals.read_when_readable(stream, 65536)
    assert tries == [] and not future.done()  # no recv() that would find nothing
    peer.send(b"hello")
    assert await asyncio.wait_for(future, 5) == b"hello"
    assert len(tries) >= 1


@pytest.mark.gen_test
async def test_read_when_readable_returns_buffered_bytes_first(pair):
    stream, peer = pair
    unread(stream, b"abc")
    assert await asyncio.wait_for(internals.read_when_readable(stream, 65536), 5) == b"abc"
    peer.send(b"def")
    assert await asyncio.wait_for(internals.read_when_readable(stream, 65536), 5) == b"def"


@pytest.mark.gen_test
async def test_read_when_readable_fails_when_the_peer_leaves_or_the_stream_is_closed(pair):
    from tornado.iostream import StreamClosedError

    stream, peer = pair
    future = internals.read_when_readable(stream, 65536)
    peer.close()
    with pytest.raises(StreamClosedError):
        await asyncio.wait_for(future, 5)
    with pytest.raises(StreamClosedError):
        internals.read_when_readable(stream, 65536)


def test_headers_get_answers_as_tornados_get_for_every_name_and_after_changes():
    """Headers.get() reads the maps directly; it returns what HTTPHeaders.get() returns for
    present, absent, differently cased and empty names, and after add, set and delete."""
    from tornado.httputil import HTTPHeaders

    fields = [("Host", "example.com"), ("Sec-WebSocket-Key", "k"), ("Upgrade", ""),
              ("Origin", "http://a")]
    ours, tornados = headers_of(fields), HTTPHeaders()
    for name, value in fields:
        tornados[name] = value
    names = ["Host", "host", "HOST", "Sec-WebSocket-Key", "sec-websocket-key", "Upgrade",
             "Origin", "Authorization", "Sec-WebSocket-Protocol", "X-Real-IP"]

    def same() -> None:
        for name in names:
            assert ours.get(name) == tornados.get(name), name
            assert ours.get(name, "d") == tornados.get(name, "d"), name

    same()
    for h in (ours, tornados):
        h.add("Origin", "http://b")  # drops the combined value: joined again on the next get
        h["X-Real-IP"] = "10.0.0.2"
        del h["Host"]
    same()
    assert ours.get("Origin") == "http://a,http://b" and ours.get("Host") is None
