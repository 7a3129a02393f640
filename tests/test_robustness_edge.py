"""Robustness at the edge: trusted proxies, security headers, static paths and body limits."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import ipaddress
import logging
import os

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from auth.clientip import client_ip

LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)
PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


# -- client address ------------------------------------------------------------------------


def test_untrusted_peer_headers_are_ignored():
    """A direct client's forged X-Forwarded-For and X-Real-IP never replace its own address."""
    assert client_ip("203.0.113.9", ["1.2.3.4"], "5.6.7.8", PROXIES) == "203.0.113.9"
    assert client_ip("127.0.0.1", ["1.2.3.4"], "5.6.7.8", ()) == "127.0.0.1"


def test_forwarded_for_is_walked_right_to_left_past_trusted_hops():
    """Behind trusted proxies the nearest untrusted hop is the client; hops left of it are not."""
    chain = ["6.6.6.6, 198.51.100.7, 10.1.2.3"]  # forged, real client, inner proxy
    assert client_ip("127.0.0.1", chain, None, PROXIES) == "198.51.100.7"
    assert client_ip("127.0.0.1", ["10.0.0.1", "10.0.0.2"], None, PROXIES) == "10.0.0.1"
    assert client_ip("127.0.0.1", ["garbage, 10.0.0.5"], None, PROXIES) == "10.0.0.5"
    assert client_ip("127.0.0.1", ["[2001:db8::1]"], None, PROXIES) == "2001:db8::1"


def test_real_ip_is_used_without_forwarded_for():
    """A trusted peer's X-Real-IP is the client when X-Forwarded-For is absent; junk is ignored."""
    assert client_ip("127.0.0.1", [], "198.51.100.8", PROXIES) == "198.51.100.8"
    assert client_ip("127.0.0.1", [], "not-an-ip", PROXIES) == "127.0.0.1"


async def _ws_attempt(api, ip: str) -> int:
    """Opens /ws without a token as if from ip (via X-Forwarded-For); returns the status."""
    request = HTTPRequest(api.base_url + "/ws", headers={"X-Forwarded-For": ip})
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    return response.code


@pytest.mark.gen_test
@pytest.mark.settings(ws_connect_rate=2, trusted_proxies=LOCAL)
async def test_rate_limits_apply_per_forwarded_client(api):
    """Behind a trusted proxy each forwarded client has its own budget, not the proxy's."""
    assert [await _ws_attempt(api, "198.51.100.1") for _ in range(3)] == [401, 401, 429]
    assert await _ws_attempt(api, "198.51.100.2") == 401  # another client is not throttled


@pytest.mark.gen_test
@pytest.mark.settings(ws_connect_rate=2)
async def test_forged_forwarded_for_does_not_escape_rate_limits(api):
    """Without --trusted-proxies a client rotating X-Forwarded-For still shares one budget."""
    codes = [await _ws_attempt(api, f"198.51.100.{i}") for i in range(3)]
    assert codes == [401, 401, 429]


@pytest.mark.gen_test
@pytest.mark.settings(trusted_proxies=LOCAL)
async def test_access_log_records_the_forwarded_client(api, caplog):
    """The access log names the client behind the proxy, not the proxy."""
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        await api.call("GET", "/health", headers={"X-Real-IP": "198.51.100.77"})
    assert any("(198.51.100.77)" in r.getMessage() for r in caplog.records), caplog.text


# -- headers -------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_every_kind_of_response_carries_the_security_headers(api):
    """API JSON, errors, static files, pages and /ws refusals all send nosniff and DENY."""
    user = await api.register()
    paths = [("GET", "/api/v1/users/me", user["access_token"]), ("GET", "/api/v1/users/me", None),
             ("GET", "/health", None), ("GET", "/static/style.css", None),
             ("GET", "/nope", None), ("GET", "/ws", None), ("GET", "/", None)]
    for method, path, token in paths:
        status, _, headers = await api.call(method, path, token=token)
        assert headers.get("X-Content-Type-Options") == "nosniff", (path, status)
        assert headers.get("X-Frame-Options") == "DENY", (path, status)
        assert headers.get("Server") == "events-server", (path, headers.get("Server"))
        assert "Strict-Transport-Security" not in headers, path


async def _upgrade_head(api, token: str, extra: str = "") -> tuple[bytes, dict[str, str]]:
    """Opens /ws by hand; returns the 101 response's status line and its headers (one each)."""
    host, port = api.base_url.split("//")[1].split(":")
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    status, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(": ")
        assert name.lower() not in headers, f"{name} twice in {head!r}"
        headers[name.lower()] = value
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    assert headers.get("sec-websocket-accept") == accept, head
    return status.encode(), headers


@pytest.mark.gen_test
@pytest.mark.settings(hsts=600)
async def test_the_upgrade_response_carries_the_websocket_and_security_headers(api, caplog):
    """The 101 has exactly the WebSocket headers, Date and the security headers (HSTS on), and
    is logged like any request; a chosen subprotocol is echoed, nothing else is added."""
    token = (await api.register())["access_token"]
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        status, headers = await _upgrade_head(api, token)
    assert status == b"HTTP/1.1 101 Switching Protocols"
    assert email.utils.parsedate_to_datetime(headers.pop("date")).year >= 2024
    headers.pop("sec-websocket-accept")
    assert headers == {"upgrade": "websocket", "connection": "Upgrade",
                       "x-content-type-options": "nosniff", "x-frame-options": "DENY",
                       "server": "events-server", "strict-transport-security": "max-age=600"}
    assert any(r.getMessage().startswith("101 GET /ws?token=REDACTED (127.0.0.1)")
               for r in caplog.records), caplog.text
    _, headers = await _upgrade_head(
        api, token, "Sec-WebSocket-Protocol: chat, events.v1.protobuf, events.v1.json\r\n"
                    "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert headers["sec-websocket-protocol"] == "events.v1.protobuf"
    assert "sec-websocket-extensions" not in headers  # compression is off by default


@pytest.mark.gen_test
@pytest.mark.settings(websocket_compression=True)
async def test_the_upgrade_response_agrees_deflate_without_context_takeover(api):
    """With compression on, the 101 answers a deflate offer with both no-context-takeover
    parameters, once; an offer without one gets no extension header."""
    token = (await api.register())["access_token"]
    _, headers = await _upgrade_head(
        api, token, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
    name, *params = headers["sec-websocket-extensions"].split("; ")
    assert name == "permessage-deflate", headers
    assert sorted(params) == ["client_no_context_takeover", "server_no_context_takeover"]
    assert "strict-transport-security" not in headers and "sec-websocket-protocol" not in headers
    _, headers = await _upgrade_head(api, token)
    assert "sec-websocket-extensions" not in headers


@pytest.mark.gen_test
@pytest.mark.settings(hsts=31536000)
async def test_hsts_is_sent_only_when_enabled(api):
    """With --hsts on, every response carries Strict-Transport-Security with the max-age."""
    for path in ("/health", "/nope"):
        _, _, headers = await api.call("GET", path)
        assert headers.get("Strict-Transport-Security") == "max-age=31536000"


# -- static paths and bodies ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_static_paths_with_control_characters_are_404(api):
    """/static/%00config.py and friends answer 404, never 500."""
    for path in ("/static/%00config.py", "/static/style.css%00", "/static/%01x",
                 "/static/..%5Cconfig.py", "/static/../config.py"):
        status, _, _ = await api.call("GET", path)
        assert status == 404, (path, status)


async def _raw_exchange(port: int, head: bytes, timeout: float = 5.0) -> bytes:
    """Sends head on a fresh socket and returns everything read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    return data


@pytest.mark.gen_test
async def test_oversized_body_is_refused_from_its_headers(api, http_port):
    """A declared 10 MiB body gets 413 (naming the limit) before a single body byte is sent."""
    head = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
    data = await _raw_exchange(http_port, head)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"larger than the 1 MiB limit" in data
    assert b"payload_too_large" in data


@pytest.mark.gen_test
async def test_chunked_body_over_the_limit_gets_413(api, http_port):
    """A chunked body that grows past 1 MiB gets the 413 envelope, not a bare 400."""
    head = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    data = await _raw_exchange(http_port, head + piece * 17 + b"0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"larger than the 1 MiB limit" in data


@pytest.mark.gen_test
async def test_chunked_body_under_the_limit_still_works(api, http_port):
    """A small chunked JSON body is parsed as usual."""
    body = b'{"name": "Chunky", "email": "chunky@example.com", "password": "password123"}'
    head = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:20], body[20:]))
    data = await _raw_exchange(http_port, head + chunks + b"0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 201"), data[:300]


def test_human_sizes_name_the_limit_exactly():
    """The 413 message states limits as bytes, KiB or MiB, whichever is exact."""
    from handlers.base import human_size

    assert [human_size(n) for n in (1 << 20, 64 << 10, 1000, 1536 << 10)] == [
        "1 MiB", "64 KiB", "1000 bytes", "1536 KiB"]

