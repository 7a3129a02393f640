"""Hostile input: deeply nested JSON, control characters and lone surrogates."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import next_event

from services import jsonlimits

REGISTER = "/api/v1/auth/register"


def _nested(depth: int) -> str:
    """Returns a JSON array nested depth levels deep."""
    return "[" * depth + "]" * depth


def test_nesting_limit_is_exact():
    """32 levels parse; 33 levels and 100k levels are refused without a RecursionError."""
    assert jsonlimits.loads(_nested(32)) is not None
    for depth in (33, 2000, 100_000):
        with pytest.raises(jsonlimits.JsonRejected):
            jsonlimits.loads(_nested(depth))
    wide = json.dumps({"a": [[1] * 50] * 50, "s": "[[[[[[[[[[" * 10})  # brackets in strings
    assert jsonlimits.loads(wide)["s"].startswith("[[[")


@pytest.mark.gen_test
async def test_deeply_nested_rest_body_is_400(api, caplog):
    """A 100k-level body gets 400 with a message, never a 500 or a logged traceback."""
    with caplog.at_level(logging.ERROR):
        for depth in (33, 100_000):
            raw = ('{"name": ' + _nested(depth) + "}").encode()
            status, parsed, _ = await api.call("POST", REGISTER, raw=raw)
            assert status == 400, parsed
            assert "nested deeper than 32" in parsed["error"]["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.gen_test
async def test_deeply_nested_ws_message_gets_an_error_and_the_socket_stays(api, caplog):
    """On /ws a 100k-level message gets an invalid_json error event; the socket keeps working."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    with caplog.at_level(logging.ERROR):
        conn.write_message('{"type": "x", "data": ' + _nested(30_000) + "}")
        event = await next_event(conn)
    assert event["type"] == "error" and event["data"]["code"] == "invalid_json", event
    assert "nested deeper" in event["data"]["message"]
    conn.write_message(json.dumps({"type": "nope"}))
    assert (await next_event(conn))["data"]["code"] == "unknown_type"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    conn.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("bad", ["A\u0000B", "tab\there", "bell\u0007", "del\u007f",
                                 "c1\u0085x", "line\u2028sep"])
async def test_control_characters_in_names_are_refused(api, bad):
    """Names with NUL or other control characters get 400 on register and on PATCH."""
    body = {"name": bad, "email": "ctl@example.com", "password": "password123"}
    status, parsed, _ = await api.call("POST", REGISTER, body)
    assert status == 400 and "control characters" in parsed["error"]["message"], parsed
    user = await api.register()
    status, parsed, _ = await api.call("PATCH", "/api/v1/users/me", {"name": bad},
                                       token=user["access_token"])
    assert status == 400, parsed


@pytest.mark.gen_test
async def test_lone_surrogates_are_refused(api):
    """A lone UTF-16 surrogate in any string gets 400 instead of a 500 from the database."""
    raw = b'{"name": "x\\ud800y", "email": "s@example.com", "password": "password123"}'
    status, parsed, _ = await api.call("POST", REGISTER, raw=raw)
    assert status == 400, parsed
    admin = await api.admin()
    status, parsed, _ = await api.call("POST", "/ws/broadcast", raw=b'{"message": "\\udfff"}',
                                       token=admin["access_token"])
    assert status == 400, parsed
    fine = (await api.register(name="Zoë \U0001f600"))["user"]["name"]
    assert fine == "Zoë \U0001f600"
