"""/ws before and at the upgrade: authentication, origins, limits and the welcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from urllib.parse import urlsplit

import pytest
from conftest import Api, next_event, wait_closed
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect
from wsutil import (
    RFC3339,
    assert_error_envelope,
    expect,
    reissue,
    reject,
    sentinel,
    wait_until,
)

from hub.disconnect import SHUTTING_DOWN

# -- authentication before the upgrade --------------------------------------------------------


@pytest.mark.gen_test
async def test_missing_token_is_rejected_with_401_before_upgrade(api):
    """Without a token the upgrade is refused with 401 and the JSON error envelope."""
    status, body, _ = await reject(f"{api.ws_url}/ws")
    assert status == 401
    assert_error_envelope(body, "unauthorized")
    assert api.ctx.hub.clients == {}


@pytest.mark.gen_test
async def test_invalid_token_is_rejected_with_401_before_upgrade(api):
    """A forged or garbled token gets 401, both for an upgrade and a plain GET."""
    status, body, _ = await reject(f"{api.ws_url}/ws?token=not.a.jwt")
    assert status == 401
    assert_error_envelope(body, "unauthorized")
    response = await AsyncHTTPClient().fetch(f"{api.base_url}/ws?token=garbage", raise_error=False)
    assert response.code == 401
    assert_error_envelope(json.loads(response.body), "unauthorized")


@pytest.mark.gen_test
async def test_expired_token_is_rejected_with_401(api):
    """An access token past its exp cannot open a socket."""
    user = await api.register()
    expired, _ = reissue(api, user["access_token"], -30)
    status, body, _ = await reject(f"{api.ws_url}/ws?token={expired}")
    assert status == 401
    assert_error_envelope(body, "unauthorized")
    assert "expired" in body["error"]["message"]


@pytest.mark.gen_test
async def test_revoked_token_is_rejected_with_401(api):
    """After logout the session's access token can no longer open a socket."""
    user = await api.register()
    status, _, _ = await api.call("POST", "/api/v1/auth/logout", token=user["access_token"])
    assert status == 200
    status, body, _ = await reject(f"{api.ws_url}/ws?token={user['access_token']}")
    assert status == 401
    assert_error_envelope(body, "unauthorized")


@pytest.mark.gen_test
async def test_refresh_token_cannot_open_a_socket(api):
    """Only access tokens open /ws; a refresh token is refused with 401."""
    user = await api.register()
    status, body, _ = await reject(f"{api.ws_url}/ws?token={user['refresh_token']}")
    assert status == 401
    assert_error_envelope(body, "unauthorized")


@pytest.mark.gen_test
async def test_bearer_header_authenticates_non_browser_clients(api):
    """A client may send the token as an Authorization: Bearer header instead of ?token=."""
    user = await api.register()
    request = HTTPRequest(f"{api.ws_url}/ws",
                          headers={"Authorization": f"Bearer {user['access_token']}"})
    conn = await websocket_connect(request)
    welcome = await expect(conn, "connection.established")
    assert welcome["data"]["user_id"] == user["user"]["id"]
    conn.close()

# -- origin check -----------------------------------------------------------------------------


def origin_request(api: Api, token: str, origin: str | None) -> HTTPRequest:
    headers = {"Origin": origin} if origin is not None else {}
    return HTTPRequest(f"{api.ws_url}/ws?token={token}", headers=headers)


@pytest.mark.gen_test
async def test_same_origin_and_missing_origin_are_allowed(api):
    """A page served by this server, and a client that sends no Origin, may connect."""
    user = await api.register()
    host = urlsplit(api.base_url).netloc
    for origin in (f"http://{host}", None):
        conn = await websocket_connect(origin_request(api, user["access_token"], origin))
        await expect(conn, "connection.established")
        conn.close()


@pytest.mark.gen_test
async def test_foreign_origin_is_rejected_with_403(api):
    """A page on another origin cannot open a socket with a stolen token: 403 before upgrade."""
    user = await api.register()
    status, body, _ = await reject(f"{api.ws_url}/ws?token={user['access_token']}",
                                   {"Origin": "http://evil.example"})
    assert status == 403
    assert_error_envelope(body, "forbidden")
    assert api.ctx.hub.clients == {}


@pytest.mark.gen_test
@pytest.mark.settings(allowed_origins=("http://ok.example",))
async def test_allowlisted_origin_is_allowed(api):
    """An origin listed in --allowed-origins may connect; others are still refused."""
    user = await api.register()
    conn = await websocket_connect(origin_request(api, user["access_token"], "http://ok.example"))
    await expect(conn, "connection.established")
    conn.close()
    status, _, _ = await reject(f"{api.ws_url}/ws?token={user['access_token']}",
                                {"Origin": "http://other.example"})
    assert status == 403

# -- welcome ----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_welcome_is_the_first_message_with_client_user_role_and_timestamp(api):
    """On open the client first receives connection.established describing its registration."""
    user = await api.register()
    conn = await websocket_connect(f"{api.ws_url}/ws?token={user['access_token']}")
    welcome = await next_event(conn)
    assert welcome["type"] == "connection.established"
    data = welcome["data"]
    assert set(data) == {"client_id", "message", "role", "user_id", "epoch", "offset",
                         "recovered", "missed"}
    assert data["recovered"] is False and data["missed"] == 0  # no position was given
    assert (data["epoch"], data["offset"]) == api.ctx.broker.log.position("feed")
    assert data["message"] == "Welcome to WebSocket real-time updates"
    assert data["role"] == "user" and data["user_id"] == user["user"]["id"]
    assert set(api.ctx.hub.clients) == {data["client_id"]}
    assert RFC3339.match(welcome["timestamp"]), welcome["timestamp"]
    sent = dt.datetime.fromisoformat(welcome["timestamp"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - sent).total_seconds()) < 10
    conn.close()


@pytest.mark.gen_test
async def test_welcome_goes_only_to_the_new_connection(api):
    """Opening another tab sends connection.established to that tab only, not to existing ones."""
    admin = await api.admin()
    first = await api.ws(admin["access_token"])
    second = await api.ws(admin["access_token"])
    await sentinel(api, admin["access_token"], first, second)

# -- limits -----------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.settings(rate_limits=True, ws_connect_rate=3)
async def test_per_ip_connect_limit_returns_429_with_retry_after(api):
    """Past --ws-connect-rate attempts a minute, the upgrade is refused with 429 + Retry-After."""
    user = await api.register()
    conns = [await api.ws(user["access_token"]) for _ in range(3)]
    status, body, headers = await reject(f"{api.ws_url}/ws?token={user['access_token']}")
    assert status == 429
    assert_error_envelope(body, "rate_limited")
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert len(api.ctx.hub.clients) == len(conns)


@pytest.mark.gen_test
@pytest.mark.settings(rate_limits=False, ws_connect_rate=1)
async def test_rate_limits_off_disables_the_connect_limit(api):
    """With --rate-limits=off the per-IP connect limit does not apply."""
    user = await api.register()
    for _ in range(3):
        (await api.ws(user["access_token"])).close()


@pytest.mark.gen_test
@pytest.mark.settings(max_connections_per_user=2)
async def test_max_connections_per_user_rejects_the_extra_connection_with_429(api):
    """A user at --max-connections-per-user gets 429 for another socket; others are unaffected."""
    user, other = await api.register(), await api.register()
    first = await api.ws(user["access_token"])
    await api.ws(user["access_token"])
    status, body, headers = await reject(f"{api.ws_url}/ws?token={user['access_token']}")
    assert status == 429
    assert_error_envelope(body, "rate_limited")
    assert headers["Retry-After"]
    await api.ws(other["access_token"])
    first.close()
    await wait_until(lambda: api.ctx.hub.user_connection_count(user["user"]["id"]) == 1)
    await api.ws(user["access_token"])


@pytest.mark.gen_test
@pytest.mark.settings(max_connections_per_user=1)
async def test_simultaneous_handshakes_cannot_exceed_the_per_user_limit(api):
    """Two simultaneous handshakes at a limit of one: exactly one socket is admitted."""
    user = await api.register()
    url = f"{api.ws_url}/ws?token={user['access_token']}"
    outcomes = await asyncio.gather(websocket_connect(url), websocket_connect(url),
                                    return_exceptions=True)
    opened = [c for c in outcomes if isinstance(c, WebSocketClientConnection)]
    rejected = [e for e in outcomes if isinstance(e, HTTPClientError)]
    assert len(opened) == 1 and [e.code for e in rejected] == [429]
    assert (await next_event(opened[0]))["type"] == "connection.established"
    assert api.ctx.hub.user_connection_count(user["user"]["id"]) == 1


@pytest.mark.gen_test
async def test_draining_server_closes_new_sockets_with_1001(api):
    """Once shutdown has closed every socket, a handshake that completes later gets 1001 too."""
    user = await api.register()
    api.ctx.hub.close_all(SHUTTING_DOWN)
    conn = await websocket_connect(f"{api.ws_url}/ws?token={user['access_token']}")
    assert await wait_closed(conn) == (1001, "server shutting down")
    assert api.ctx.hub.clients == {}


@pytest.mark.gen_test
async def test_plain_get_without_upgrade_gets_400_envelope(api):
    """GET /ws without an Upgrade header gets a 400 JSON envelope, not a bare text error."""
    user = await api.register()
    status, body, _ = await api.call("GET", f"/ws?token={user['access_token']}")
    assert status == 400
    assert_error_envelope(body, "validation_error")

