"""Browser origins: CORS for the REST API (--cors-origins) and refused /ws origins that say
why, in the response and (once a minute per origin) in the log."""

from __future__ import annotations

import logging

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from wsutil import assert_error_envelope, expect, reject

from edge.origins import ALLOWED_HEADERS, MAX_AGE, Origins

APP = "http://127.0.0.1:5173"  # a front-end served from another origin
OTHER = "http://evil.example"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"


def preflight(origin: str, method: str = "PATCH",
              headers: str = "authorization, content-type") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers}


@pytest.mark.settings(cors_origins=(APP,))
@pytest.mark.gen_test
async def test_preflight_from_an_allowed_origin_gets_204_with_methods_and_headers(api):
    """A preflight from a listed origin is answered 204 with the route's methods, the headers
    the API reads, a max age, Vary: Origin and the origin echoed (with credentials)."""
    status, body, headers = await api.call("OPTIONS", ME, headers=preflight(APP))
    assert status == 204 and body is None
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Methods"] == "GET, PATCH, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == ALLOWED_HEADERS
    for name in ("Authorization", "Content-Type", "Idempotency-Key", "X-API-Key"):
        assert name in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Max-Age"] == str(MAX_AGE)
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in headers.get_list("Vary")
    status, _, headers = await api.call("OPTIONS", LOGIN, headers=preflight(APP, "POST"))
    assert status == 204 and headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"


@pytest.mark.settings(cors_origins=(APP,))
@pytest.mark.gen_test
async def test_preflight_from_another_origin_is_refused_naming_the_option(api):
    """A preflight from an origin not listed gets 403 naming --cors-origins, and no
    Access-Control-Allow-Origin."""
    status, body, headers = await api.call("OPTIONS", ME, headers=preflight(OTHER))
    assert status == 403
    assert body["error"]["code"] == "origin_not_allowed"
    assert OTHER in body["error"]["message"] and "--cors-origins" in body["error"]["message"]
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.settings(cors_origins=(APP,))
@pytest.mark.gen_test
async def test_responses_to_an_allowed_origin_carry_cors_headers_errors_included(api):
    """Success and error responses to a listed origin echo it with Vary: Origin; responses to
    any other origin carry no Access-Control-Allow-Origin."""
    user = await api.register()
    status, _, headers = await api.call("GET", ME, token=user["access_token"],
                                        headers={"Origin": APP})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == APP
    assert "Origin" in headers.get_list("Vary")
    status, body, headers = await api.call("POST", LOGIN, {"email": "x@example.com",
                                                           "password": "wrongpass1"},
                                           headers={"Origin": APP})
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert headers["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]
    status, _, headers = await api.call("GET", "/api/v1/nowhere", headers={"Origin": APP})
    assert status == 404 and headers["Access-Control-Allow-Origin"] == APP
    status, _, headers = await api.call("GET", ME, token=user["access_token"],
                                        headers={"Origin": OTHER})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.settings(cors_origins=("*",))
@pytest.mark.gen_test
async def test_star_allows_any_origin_without_credentials(api):
    """With `*` any origin gets `Access-Control-Allow-Origin: *` and never
    Access-Control-Allow-Credentials."""
    status, _, headers = await api.call("OPTIONS", ME, headers=preflight(OTHER))
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers
    status, _, headers = await api.call("GET", "/health", headers={"Origin": OTHER})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers


@pytest.mark.gen_test
async def test_without_cors_origins_nothing_is_allowed_cross_origin(api):
    """By default (same origin only) no response carries Access-Control-Allow-Origin and a
    preflight is refused naming --cors-origins."""
    status, body, headers = await api.call("OPTIONS", ME, headers=preflight(APP))
    assert status == 403 and "--cors-origins" in body["error"]["message"]
    assert "Access-Control-Allow-Origin" not in headers
    status, _, headers = await api.call("OPTIONS", ME)  # not a preflight: no such method
    assert status == 405 and headers["Allow"] == "GET, PATCH"
    status, _, headers = await api.call("GET", "/health", headers={"Origin": APP})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.settings(cors_origins=(APP,))
@pytest.mark.gen_test
async def test_a_cors_origin_may_also_open_the_socket(api):
    """An origin in --cors-origins may open /ws too: a browser app needs both."""
    user = await api.register()
    conn = await websocket_connect(HTTPRequest(f"{api.ws_url}/ws?token={user['access_token']}",
                                               headers={"Origin": APP}))
    await expect(conn, "connection.established")
    conn.close()


# -- a refused /ws origin says why --------------------------------------------------------


@pytest.mark.gen_test
async def test_refused_socket_origin_names_the_origin_and_the_option(api, caplog):
    """A refused Origin gets 403 naming the origin and --allowed-origins; the log says why
    once per origin, however often it retries."""
    user = await api.register()
    url = f"{api.ws_url}/ws?token={user['access_token']}"
    caplog.set_level(logging.WARNING, logger="ws")
    for _ in range(3):
        status, body, _ = await reject(url, {"Origin": "http://localhost:3000"})
        assert status == 403
        assert_error_envelope(body, "forbidden")
        assert "http://localhost:3000" in body["error"]["message"]
        assert "--allowed-origins" in body["error"]["message"]
    status, _, _ = await reject(url, {"Origin": OTHER})
    assert status == 403
    lines = [r.getMessage() for r in caplog.records
             if r.name == "ws" and r.levelno == logging.WARNING]
    assert len([m for m in lines if "http://localhost:3000" in m]) == 1, lines
    assert len([m for m in lines if OTHER in m]) == 1, lines
    assert all("--allowed-origins" in m for m in lines)
    assert api.ctx.hub.clients == {}


def test_refusal_log_repeats_after_a_minute_and_stays_bounded(caplog):
    """The refusal log line for one origin comes again after a minute; a flood of distinct
    origins keeps a bounded memory."""
    now = [1000.0]
    origins = Origins((), (), clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="ws")
    origins.refused("http://a.example", "h:1")
    origins.refused("http://a.example", "h:1")
    now[0] += 59
    origins.refused("http://a.example", "h:1")
    assert len(caplog.records) == 1
    now[0] += 2
    origins.refused("http://a.example", "h:1")
    assert len(caplog.records) == 2
    for n in range(5000):
        origins.refused(f"http://{n}.example", "h:1")
    assert len(origins._logged) <= 1000
