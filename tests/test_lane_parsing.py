"""The upgrade lane's parsing shortcuts (edge/lane.py, edge/internals.py, handlers/wsauth.py)
give what Tornado's own parsers give, on generated input: the end of a request head, the
request line, the request object, and a query argument's value."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tornado.httputil import (
    HTTPHeaders,
    HTTPInputError,
    HTTPServerRequest,
    RequestStartLine,
    parse_request_start_line,
)
from tornado.web import Application, RequestHandler

from edge import internals
from edge.lane import _HEAD_END, head_end, start_line
from handlers.wsauth import HandshakeMixin

HEAD_END = re.compile(_HEAD_END)


def _regex_end(data: bytes) -> int:
    match = HEAD_END.search(data)
    return match.end() if match else -1


@settings(max_examples=3000)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b" ", b"\n\r"]), max_size=24))
def test_head_end_finds_the_end_the_pattern_finds(pieces):
    data = b"".join(pieces)
    assert head_end(data) == _regex_end(data)


def test_head_end_of_a_handshake_and_of_unfinished_heads():
    head = b"GET /ws?token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
    assert head_end(head + b"\x81\x00") == len(head)
    assert head_end(head[:-2]) == -1
    assert head_end(b"GET / HTTP/1.1\nHost: x\n\nrest") == len(b"GET / HTTP/1.1\nHost: x\n\n")


# Characters that matter to a request line: separators, controls, DEL, obs-text, ASCII.
_LINE_CHARS = st.sampled_from(list(" \t\x00\x01\x7f\x80\xe9\xff/?=&%:GETHPwsab0123.") + [
    "HTTP/1.1", "HTTP/1.0", "GET", " /ws"])


@settings(max_examples=3000)
@given(st.lists(_LINE_CHARS, max_size=12))
def test_start_line_accepts_only_lines_tornado_accepts_and_reads_them_alike(pieces):
    line = "".join(pieces)
    ours = start_line(line)
    try:
        theirs = parse_request_start_line(line)
    except HTTPInputError:
        theirs = None
    if ours is not None:
        assert theirs == ours
    elif theirs is not None:  # left to Tornado: not HTTP/1.1, or a character outside ASCII
        assert theirs.version != "HTTP/1.1" or not (theirs.path + theirs.method).isascii()


def test_start_line_of_an_upgrade_request():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_"
    assert start_line(f"GET /ws?token={token} HTTP/1.1") == RequestStartLine(
        "GET", f"/ws?token={token}", "HTTP/1.1")
    for line in ("GET /ws HTTP/1.0", "GET  /ws HTTP/1.1", "GET /ws\t HTTP/1.1", "GET /ws",
                 "GET /w\x7fs HTTP/1.1", "GET /caf\xe9 HTTP/1.1", "GET /ws HTTP/1.1 "):
        assert start_line(line) is None, line


class _Context:
    remote_ip, protocol = "10.1.2.3", "https"


@pytest.mark.parametrize("host", ["example.com", "127.0.0.1:8888", "[::1]:80", "EXAMPLE.org"])
def test_upgrade_request_is_the_request_tornado_builds(host):
    connection = mock.Mock(context=_Context())
    headers = internals.headers_of([("Host", host), ("Upgrade", "websocket")])
    ours = internals.upgrade_request(connection, RequestStartLine("GET", "/ws", "HTTP/1.1"),
                                     "/ws?token=abc&since=5", "token=abc&since=5", headers,
                                     {"token": [b"abc"], "since": [b"5"]})
    theirs = HTTPServerRequest(connection=connection, headers=headers,
                               start_line=RequestStartLine("GET", "/ws?token=abc&since=5",
                                                           "HTTP/1.1"))
    mine, tornados = vars(ours), vars(theirs)
    assert list(mine) == list(tornados)  # the same keys in the same order: one key table
    assert abs(mine.pop("_start_time") - tornados.pop("_start_time")) < 1.0
    assert mine == tornados
    assert ours.query_arguments is not ours.arguments  # as Tornado's copy


@pytest.mark.parametrize("host", ["a b", "a,b", "ex\x01ample"])
def test_upgrade_request_refuses_the_host_tornado_refuses(host):
    headers = internals.headers_of([("Host", host)])
    with pytest.raises(HTTPInputError):
        HTTPServerRequest(connection=mock.Mock(), headers=headers,
                          start_line=RequestStartLine("GET", "/ws", "HTTP/1.1"))
    with pytest.raises(HTTPInputError):
        internals.upgrade_request(mock.Mock(), RequestStartLine("GET", "/ws", "HTTP/1.1"),
                                  "/ws", "", headers, {})


def _handler(values: list[bytes]) -> RequestHandler:
    request = HTTPServerRequest(connection=mock.Mock(), headers=HTTPHeaders({"Host": "x"}),
                                start_line=RequestStartLine("GET", "/ws", "HTTP/1.1"))
    request.query_arguments = {"token": values} if values else {}
    return RequestHandler(Application(), request)


@settings(max_examples=2000)
@given(st.lists(st.binary(max_size=12) | st.text(max_size=12).map(str.encode), max_size=3))
def test_query_gives_what_get_query_argument_gives(values):
    handler = _handler(values)
    try:
        theirs = handler.get_query_argument("token", None)
    except Exception as exc:  # noqa: BLE001 - a value that is not UTF-8: the same error
        with pytest.raises(type(exc)):
            HandshakeMixin.query(handler, "token")  # type: ignore[arg-type]
        return
    assert HandshakeMixin.query(handler, "token") == theirs  # type: ignore[arg-type]


def test_query_of_a_token_and_of_an_absent_argument():
    handler = _handler([b"  eyJ.abc.def  "])
    assert HandshakeMixin.query(handler, "token") == "eyJ.abc.def"  # type: ignore[arg-type]
    assert HandshakeMixin.query(handler, "since") is None  # type: ignore[arg-type]
