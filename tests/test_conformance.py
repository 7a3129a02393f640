"""The conformance run's echo route (proof/echo.py) and its report (proof/summary.py):
served on the real stack, never in production, and a failed case fails the run."""

from __future__ import annotations

import ast
import json
import os
import zlib

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from wirewatch import RSV1, WireClient

from app import make_app, routes
from edge.protocol import StrictProtocol
from edge.server import EdgeServer
from proof import conformance, summary
from proof.echo import MAX_MESSAGE_SIZE, PATH, EchoSocketHandler, echo_route, echo_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_TREES = ("auth", "edge", "handlers", "hub", "models", "services")
SERVER_FILES = ("app.py", "config.py", "context.py", "main.py")
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
TAIL = b"\x00\x00\xff\xff"


@pytest.fixture
def settings(settings):
    """The test settings, as the conformance run changes them."""
    return echo_settings(settings)


@pytest.fixture
def app(ctx):
    """app.py's application with the echo route, as proof/echo.py serves it."""
    from proof.echo import make_echo_app

    return make_echo_app(ctx)


@pytest.fixture
def http_server(request, io_loop, _unused_port, app, ctx):
    """EdgeServer with its upgrade lane on the echo route, as main.serve() runs it there."""
    server = EdgeServer(app, settings=ctx.settings, upgrade_route=echo_route(ctx))
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections,
                     timeout=request.config.option.async_test_timeout)


async def echo_client(api, **offers) -> WireClient:
    user = await api.register()
    return await WireClient.connect(api.ws_url, user["access_token"], path=PATH, **offers)


@sqlite_only
@pytest.mark.gen_test
async def test_echo_route_echoes_text_and_binary_through_the_lane_and_the_hub(
        api, http_server):
    """An authenticated upgrade to /echo is served by the lane with StrictProtocol, registers
    with the hub, sends no welcome, and echoes a text and a binary message as they came."""
    client = await echo_client(api)
    await client.send("héllo ✓".encode())
    await client.send(b"\x00\xff" * 100, opcode=0x2)
    assert await client.read_frame() == (0x81, "héllo ✓".encode())
    assert await client.read_frame() == (0x82, b"\x00\xff" * 100)
    assert http_server.lane.upgraded == 1
    (registered,) = api.ctx.hub.clients.values()
    assert isinstance(registered.conn, EchoSocketHandler)
    assert isinstance(registered.conn.ws_connection, StrictProtocol)
    client.close()


@sqlite_only
@pytest.mark.gen_test
async def test_echo_route_refuses_an_upgrade_without_a_token(api, http_server):
    """/echo authenticates as /ws does: no token, 401 with the error envelope."""
    status, body, _ = await api.call("GET", PATH, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 401 and body["error"]["code"] == "unauthorized"


@sqlite_only
@pytest.mark.gen_test
@pytest.mark.parametrize("offer,window", [
    ("permessage-deflate; client_max_window_bits", 15),
    ("permessage-deflate; server_max_window_bits=9", 9),
])
async def test_echo_route_compresses_each_echo_with_the_agreed_window(api, http_server, offer,
                                                                      window):
    """On a compressing connection every echo, small ones too, is deflated (RSV1) with a window
    the client's inflater of the agreed size reads; compressed messages are inflated first."""
    client = await echo_client(api, extensions=offer)
    assert client.extension is not None
    big = ("conformance " * 300).encode()
    await client.send(b"tiny")
    await client.send(big, compress=True)
    for sent in (b"tiny", big):
        first, payload = await client.read_frame()
        assert first == 0x81 | RSV1
        assert zlib.decompressobj(-window).decompress(payload + TAIL) == sent
    client.close()


@sqlite_only
@pytest.mark.gen_test
async def test_echo_route_takes_messages_up_to_16_mib(api, http_server):
    """The echo route's inbound limit is raised for the cases of group 9 (16 MiB)."""
    assert api.ctx.settings.max_message_size == MAX_MESSAGE_SIZE == 16 * 1024 * 1024
    client = await echo_client(api)
    payload = os.urandom(1 << 20)
    await client.send(payload, opcode=0x2)
    assert await client.read_frame() == (0x82, payload)
    client.close()


@sqlite_only
def test_production_route_table_has_no_echo_route(ctx):
    """app.py's routes and application never serve /echo, and no server module imports proof."""
    assert all(route[1] is not EchoSocketHandler and route[0] != PATH for route in routes(ctx))
    request = HTTPServerRequest(start_line=RequestStartLine("GET", PATH, "HTTP/1.1"),
                                headers=HTTPHeaders({"Host": "localhost"}))
    delegate = make_app(ctx).find_handler(request)
    assert delegate.handler_class is not EchoSocketHandler
    importers = []
    for path in server_modules():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            importers += [path for name in names if name.split(".")[0] == "proof"]
    assert importers == []


def server_modules() -> list[str]:
    out = list(SERVER_FILES)
    for tree in SERVER_TREES:
        for folder, _, files in os.walk(os.path.join(ROOT, tree)):
            out += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files
                    if f.endswith(".py")]
    return out


INDEX = {"events-server": {
    "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 2, "remoteCloseCode": 1000},
    "6.4.1": {"behavior": "NON-STRICT", "behaviorClose": "OK", "duration": 2000,
              "remoteCloseCode": 1007},
    "7.13.1": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL", "duration": 1,
               "remoteCloseCode": 1002},
    "12.1.10": {"behavior": "OK", "behaviorClose": "OK", "duration": 900,
                "remoteCloseCode": 1000},
}}


def write_index(reports, index) -> str:
    reports.mkdir(exist_ok=True)
    (reports / "index.json").write_text(json.dumps(index))
    return str(reports)


def test_summary_counts_each_behaviour_per_group_in_case_order():
    """The table has a row per group in numeric order (12 after 7) and a total."""
    verdicts = summary.load(INDEX)
    assert [v.case for v in verdicts] == ["1.1.1", "6.4.1", "7.13.1", "12.1.10"]
    table = summary.table(verdicts).splitlines()
    assert table[2:] == ["| 1 | 1 | 1 | 0 | 0 | 0 | 0 | 0 |",
                         "| 6 | 1 | 0 | 1 | 0 | 0 | 0 | 0 |",
                         "| 7 | 1 | 0 | 0 | 1 | 0 | 0 | 0 |",
                         "| 12 | 1 | 1 | 0 | 0 | 0 | 0 | 0 |",
                         "| all | 4 | 2 | 1 | 1 | 0 | 0 | 0 |"]
    assert summary.problems(verdicts) == []


def test_run_passes_only_when_every_case_conforms_and_the_log_is_clean(tmp_path):
    """OK, NON-STRICT and INFORMATIONAL pass; a clean run exits 0 and writes summary.md."""
    reports = write_index(tmp_path / "reports", INDEX)
    assert conformance.report(reports, ["1.*"], 0, True, 0, [], 1.0) == 0
    assert "Every case conformed" in (tmp_path / "reports" / "summary.md").read_text()


@pytest.mark.parametrize("change,why", [
    ({"behavior": "FAILED"}, "12.1.10: behaviour FAILED"),
    ({"behavior": "UNIMPLEMENTED"}, "12.1.10: behaviour UNIMPLEMENTED"),
    ({"behavior": "ERROR", "behaviorClose": "FAILED"}, "12.1.10: behaviour ERROR"),
    ({"behaviorClose": "WRONG CODE"}, "12.1.10: behaviour OK, close WRONG CODE"),
])
def test_run_fails_on_a_case_that_did_not_conform(tmp_path, change, why):
    """A FAILED, UNIMPLEMENTED or ERROR behaviour, or a close not OK, fails the run."""
    index = {"events-server": {**INDEX["events-server"]}}
    index["events-server"]["12.1.10"] = {**index["events-server"]["12.1.10"], **change}
    reports = write_index(tmp_path / "reports", index)
    assert conformance.report(reports, ["12.*"], 1, True, 0, [], 1.0) == 1
    assert why in (tmp_path / "reports" / "summary.md").read_text()


@pytest.mark.parametrize("kosoku,alive,status,log", [
    (0, True, 0, ["Traceback (most recent call last):"]),
    (0, False, 0, []),
    (0, True, None, []),
    (1, True, 0, []),
])
def test_run_fails_when_the_server_did_not_survive_or_logged_a_traceback(
        tmp_path, kosoku, alive, status, log):
    """A traceback in the log, a server that stopped answering or did not stop cleanly, or
    kosoku's own failure status, each fails a run whose cases all passed."""
    reports = write_index(tmp_path / "reports", INDEX)
    assert conformance.report(reports, ["1.*"], kosoku, alive, status, log, 1.0) == 1


def test_run_fails_without_results(tmp_path):
    """A run that produced no index.json (kosoku never reached the server) fails."""
    (tmp_path / "reports").mkdir()
    assert conformance.report(str(tmp_path / "reports"), ["1.*"], 0, True, 0, [], 1.0) == 1
