"""--log-format=json: every line is a JSON object with request fields and never a token."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import urllib.request

import pytest
from serverproc import free_port
from test_cli import clean_env, http, wait_healthy
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from app import ROOT
from edge.log_format import TEXT_FORMAT, JsonFormatter, TextFormatter, scrub


@pytest.fixture
def json_log(caplog):
    """Captures every log record as JSON lines in a buffer for the length of a test."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield buffer
    root.removeHandler(handler)


def parse_lines(text: str) -> list[dict]:
    """Parses each non-empty line as a JSON object (failing on any line that is not one)."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all(isinstance(line, dict) for line in lines)
    return lines


def test_json_formatter_writes_fields_and_the_exception_text():
    """A record with an exception becomes one JSON line with time, level, logger and error."""
    try:
        raise RuntimeError("boom at /ws?token=abc.def.ghi")
    except RuntimeError:
        record = logging.getLogger("api").makeRecord(
            "api", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and line["logger"] == "api" and line["message"] == "failed here"
    assert line["time"].endswith("Z") and "RuntimeError" in line["error"]
    assert "abc.def.ghi" not in line["error"] and "token=REDACTED" in line["error"]


def test_scrub_hides_token_parameters_and_jwt_shapes():
    """scrub() replaces token query values and JWT-shaped strings, leaving other text alone."""
    assert scrub("GET /ws?token=secret&x=1") == "GET /ws?token=REDACTED&x=1"
    assert scrub("bearer eyJhbGci.eyJzdWIi.c2lnbmF0dXJl") == "bearer REDACTED"
    assert scrub("GET /health 200") == "GET /health 200"


@pytest.mark.gen_test
async def test_json_access_lines_have_request_fields_and_no_token(api, json_log, monkeypatch):
    """Access lines for /ws?token= (accepted and refused) carry request fields, never the token;
    an unexpected error's line carries the exception text."""

    async def crash() -> None:
        raise RuntimeError("boom")

    user = await api.register()
    token = user["access_token"]
    conn = await websocket_connect(f"{api.ws_url}/ws?token={token}")
    await conn.read_message()
    conn.close()
    with pytest.raises(HTTPClientError):
        await websocket_connect(f"{api.ws_url}/ws?token={token[:-4]}AAAA")
    assert (await api.call("GET", f"/nope?access_token={token}"))[0] == 404
    monkeypatch.setattr(api.ctx.health, "check", crash)
    assert (await api.call("GET", f"/health?token={token}"))[0] == 500
    text = json_log.getvalue()
    lines = parse_lines(text)
    access = [line for line in lines if line["logger"] == "tornado.access"]
    statuses = {line["status"] for line in access if line["path"].startswith("/ws")}
    assert {101, 401} <= statuses, access
    for line in access:
        assert {"time", "level", "message", "method", "path", "duration_ms", "client"} <= set(line)
        assert line["client"] == "127.0.0.1"
    assert any(line["path"] == "/nope?access_token=REDACTED" for line in access)
    errors = [line for line in lines if line["level"] == "ERROR" and "error" in line]
    assert any("RuntimeError: boom" in line["error"] and "/health?token=REDACTED"
               in line["message"] for line in errors), errors
    for secret in (token, token.split(".")[2]):
        assert secret not in text


def test_server_with_json_logs_and_metrics_port(tmp_path):
    """`main.py --log-format=json --metrics-port=N` logs only JSON lines, without tokens, and
    serves /metrics on N while the main port answers 404 for it."""
    port, metrics_port = free_port(), free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(port), "--data-dir", str(tmp_path / "d"),
             "--log-format=json", f"--metrics-port={metrics_port}"],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=clean_env())
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(proc, base, log_path)
            status, parsed = http("POST", base + "/api/v1/auth/register",
                                  {"name": "J", "email": "j@example.com", "password": "secure123"})
            token = parsed["data"]["access_token"]
            assert http("GET", f"{base}/ws?token={token}")[0] == 400  # no upgrade
            assert http("GET", f"{base}/metrics")[0] == 404
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
                assert b"events_http_requests_total" in response.read()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    text = log_path.read_text()
    assert code == 0, text
    lines = parse_lines(text)
    assert any(line.get("path") == "/ws?token=REDACTED" and line["status"] == 400
               for line in lines), lines
    assert token not in text


def test_text_lines_match_the_stock_formatter_across_seconds():
    """TextFormatter formats the date and time once per second: each line still shows its
    own second and milliseconds, exactly as logging.Formatter(TEXT_FORMAT) would."""
    ours, stock = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    base = 1_790_000_000.0
    for created in (base + 0.001, base + 0.999, base + 1.0, base + 1.5, base + 0.25, base + 61.042):
        record = logging.LogRecord("tornado.access", logging.INFO, __file__, 1, "%d %s",
                                   (101, "GET /ws"), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == stock.format(record)


def test_text_lines_with_an_exception_or_a_stack_match_the_stock_formatter():
    """Records with an exception or a stack take the base class's path, with the same text."""
    ours, stock = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    for exc, stack in ((exc_info, None), (None, "Stack (most recent call last):\n  here"),
                       (None, None)):
        record = logging.LogRecord("server", logging.ERROR, __file__, 1, "%(a)s and %(b)d",
                                   ({"a": "x", "b": 2},), exc, sinfo=stack)
        assert ours.format(record) == stock.format(record)
