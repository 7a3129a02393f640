"""WebSocket protocol errors close with RFC 6455 codes, checked frame by frame on a raw socket."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from conftest import wait_closed

from edge.protocol import StrictProtocol


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          masked: bool = True, length: int | None = None) -> bytes:
    """Builds one client frame by hand (masked unless told otherwise)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload) if length is None else length
    if n < 126:
        head = struct.pack("BB", b0, (0x80 if masked else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if masked else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if masked else 0) | 127, n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A WebSocket client on a plain TCP stream: sends raw frames, reads server frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, token: str) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}"
                      f"\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        sock = cls(reader, writer)
        opcode, payload = await sock.read_frame()
        assert opcode == 1 and b"connection.established" in payload
        return sock

    async def read_frame(self) -> tuple[int, bytes]:
        """Reads one server frame: (opcode, payload)."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), 5)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def close_code(self) -> int:
        """Reads frames until the server's close frame and returns its status code."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    async def server_hung_up(self) -> bool:
        """Tells whether the server closed the TCP connection (EOF) after its close frame."""
        return await asyncio.wait_for(self.reader.read(), 5) == b""


@pytest.fixture
def raw(api, http_port):
    """Opens authenticated raw sockets to /ws (each for a fresh user)."""
    opened: list[RawSocket] = []

    async def open_() -> RawSocket:
        user = await api.register()
        sock = await RawSocket.open(http_port, user["access_token"])
        opened.append(sock)
        return sock

    yield open_
    for sock in opened:
        sock.writer.close()


CASES = [
    ("invalid UTF-8 text", [frame(0x1, b"\xff\xfe\xfd")], 1007),
    ("invalid UTF-8 across fragments",
     [frame(0x1, b"\xe2\x82", fin=False), frame(0x0, b"\xff")], 1007),
    ("RSV1 without an extension", [frame(0x1, b"{}", rsv=0x40)], 1002),
    ("RSV3", [frame(0x1, b"{}", rsv=0x10)], 1002),
    ("unknown data opcode", [frame(0x3, b"x")], 1002),
    ("unknown control opcode", [frame(0xB, b"x")], 1002),
    ("fragmented ping", [frame(0x9, b"x", fin=False)], 1002),
    ("ping over 125 bytes", [frame(0x9, b"x" * 126)], 1002),
    ("unmasked text", [frame(0x1, b'{"type":"x"}', masked=False)], 1002),
    ("continuation without a start", [frame(0x0, b"x")], 1002),
    ("new message inside a fragmented one", [frame(0x1, b"{", fin=False), frame(0x1, b"{}")],
     1002),
    ("close code 1005", [frame(0x8, struct.pack("!H", 1005))], 1002),
    ("close code 1006", [frame(0x8, struct.pack("!H", 1006))], 1002),
    ("close code 999", [frame(0x8, struct.pack("!H", 999))], 1002),
    ("close code 1004", [frame(0x8, struct.pack("!H", 1004))], 1002),
    ("close code 1016", [frame(0x8, struct.pack("!H", 1016))], 1002),
    ("close code 2999", [frame(0x8, struct.pack("!H", 2999))], 1002),
    ("close code 5000", [frame(0x8, struct.pack("!H", 5000))], 1002),
    ("one-byte close payload", [frame(0x8, b"\x03")], 1002),
    ("close reason not UTF-8", [frame(0x8, struct.pack("!H", 1000) + b"\xff")], 1007),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name,frames,code", CASES, ids=[c[0] for c in CASES])
async def test_protocol_error_closes_with_the_rfc_code(raw, name, frames, code):
    """Each malformed frame sequence gets a close frame with its RFC 6455 code, then EOF."""
    sock = await raw()
    for data in frames:
        sock.writer.write(data)
    assert await sock.close_code() == code, name
    assert await sock.server_hung_up()


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_valid_close_codes_are_echoed(raw, code):
    """A close frame with a valid code is answered with the same code."""
    sock = await raw()
    sock.writer.write(frame(0x8, struct.pack("!H", code) + "bye ✓".encode()))
    assert await sock.close_code() == code


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_well_formed_frames_still_work(raw):
    """Fragmented UTF-8 text, a ping in between and an empty close all behave normally."""
    sock = await raw()
    sock.writer.write(frame(0x1, '{"type": "ü'.encode()[:-1], fin=False))
    sock.writer.write(frame(0x9, b"hi"))
    sock.writer.write(frame(0x0, '{"type": "ü"}'.encode()[len('{"type": "ü'.encode()) - 1:]))
    assert await sock.read_frame() == (0xA, b"hi")
    opcode, payload = await sock.read_frame()
    assert opcode == 1 and b"unknown_type" in payload
    sock.writer.write(frame(0x8, b""))
    opcode, _ = await sock.read_frame()
    assert opcode == 0x8


def _request(n: int, pad: int = 0) -> bytes:
    return frame(0x1, f'{{"id": {n}, "type": "nope", "pad": "{"x" * pad}"}}'.encode())


async def _error_ids(sock: RawSocket, count: int) -> list[int]:
    ids = []
    for _ in range(count):
        opcode, payload = await sock.read_frame()
        assert opcode == 1 and b'"unknown_type"' in payload, payload
        ids.append(int(payload.split(b'"id":')[1].split(b",")[0]))
    return ids


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_frames_arriving_together_are_each_handled_in_order(raw):
    """Whole frames read in one go (7-bit and 16-bit lengths) are answered in order."""
    sock = await raw()
    sock.writer.write(b"".join(_request(n, pad=300 * (n % 2)) for n in range(1, 9)))
    assert await _error_ids(sock, 8) == list(range(1, 9))


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("cut", [1, 2, 3, 5, 8, 40])
async def test_a_frame_split_anywhere_is_read_whole(raw, cut):
    """A frame whose header, length, mask or payload arrives in pieces is still read whole."""
    sock = await raw()
    data = _request(1, pad=200) + _request(2)
    for start in range(0, len(data), cut if cut < 40 else 130):
        sock.writer.write(data[start:start + (cut if cut < 40 else 130)])
        await sock.writer.drain()
        await asyncio.sleep(0.002)
    assert await _error_ids(sock, 2) == [1, 2]


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.settings(max_message_size=1000)
async def test_oversized_frame_read_whole_still_closes_1009(api):
    """A frame over the message size limit closes 1009 even when all of it is already read."""
    conn = await api.ws((await api.register())["access_token"])
    await conn.write_message(f'{{"type": "nope", "pad": "{"x" * 960}"}}')  # under the limit
    assert b"unknown_type" in (await conn.read_message()).encode()
    await conn.write_message("x" * 1001)
    assert await wait_closed(conn) == (1009, "message too big")


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_an_idle_socket_keeps_no_read_bytes(api):
    """Once its last message is handled, a connection's protocol holds no unparsed bytes."""
    conn = await api.ws((await api.register())["access_token"])
    await conn.write_message(f'{{"type": "nope", "pad": "{"x" * 5000}"}}')
    assert b"unknown_type" in (await conn.read_message()).encode()
    (client,) = api.ctx.hub.clients.values()
    protocol = client.conn.ws_connection
    assert protocol._inbuf == b"" and protocol._inpos == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_small_fragments_read_together_are_parsed_from_one_buffer(raw, monkeypatch):
    """A message cut into 300 small frames that arrive together is parsed in place: Tornado's
    reader re-reads each fragment's header from the same buffer, not from a copy of the rest
    of it per frame (time quadratic in what one read brings; Autobahn 9.3 and 12.x)."""
    buffers: list[int] = []
    real = StrictProtocol._receive_frame

    async def spy(self):
        buffers.append(id(self._inbuf))
        await real(self)

    monkeypatch.setattr(StrictProtocol, "_receive_frame", spy)
    sock = await raw()
    message = b'{"id": 7, "type": "nope", "pad": "' + b"x" * 3000 + b'"}'
    pieces = [message[i:i + 11] for i in range(0, len(message), 11)]
    sock.writer.write(b"".join(frame(0x0 if i else 0x1, piece, fin=i == len(pieces) - 1)
                               for i, piece in enumerate(pieces)))
    assert await _error_ids(sock, 1) == [7]
    assert len(pieces) > 250 and len(set(buffers)) < 10  # a buffer per read, not per frame


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.settings(max_message_size=8 << 20)
async def test_a_frame_larger_than_many_reads_is_joined_once(raw, monkeypatch):
    """A 4 MiB frame arriving over many reads is read whole, its parts joined once at the end
    (adding each read to the bytes so far copied it hundreds of times over)."""
    joins: list[int] = []
    real = StrictProtocol._read_rest

    async def spy(self, head: bytes, n: int) -> bytes:
        joined = await real(self, head, n)
        joins.append(len(joined))
        return joined

    monkeypatch.setattr(StrictProtocol, "_read_rest", spy)
    sock = await raw()
    sock.writer.write(_request(9, pad=4 << 20))
    assert await _error_ids(sock, 1) == [9]
    assert len(joins) == 1 and joins[0] >= 4 << 20
