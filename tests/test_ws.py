"""Integration tests of /ws, /ws/stats and /ws/broadcast with real WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import re
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt
import pytest
from conftest import TEST_SECRET, Api, next_event, wait_closed
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import IOStream
from tornado.websocket import WebSocketClientConnection, websocket_connect

import services.health
from auth.jwt import TokenIssuer

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# -- helpers ---------------------------------------------------------------------------------


async def expect(conn: WebSocketClientConnection, type_: str) -> dict[str, Any]:
    """Reads the next event on conn and asserts its type; returns the event."""
    event = await next_event(conn)
    assert event["type"] == type_, event
    return event


async def sentinel(api: Api, admin_token: str, *conns: WebSocketClientConnection) -> None:
    """Broadcasts a unique alert and asserts it is the very next message on every conn.

    This proves, without sleeping, that nothing else was delivered to those sockets between
    the previous action and now: events are written in publish order on each socket.
    """
    text = f"sentinel-{uuid.uuid4().hex[:8]}"
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": text}, admin_token)
    assert status == 200, body
    for conn in conns:
        event = await next_event(conn)
        assert event["type"] == "system.alert" and event["data"]["message"] == text, event


async def reject(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """Attempts a WebSocket upgrade that must fail; returns (status, JSON body, headers)."""
    request = HTTPRequest(url, headers=headers or {})
    with pytest.raises(HTTPClientError) as info:
        conn = await websocket_connect(request)
        conn.close()
    response = info.value.response
    assert response is not None, info.value
    return info.value.code, json.loads(response.body), response.headers


def assert_error_envelope(body: Any, code: str) -> None:
    assert body["success"] is False and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def reissue(api: Api, token: str, ttl: int) -> tuple[str, int]:
    """Returns a copy of an access token with a new lifetime (same user, session, version)."""
    settings = api.ctx.settings
    claims = api.ctx.issuer.verify(token, "access")
    issuer = TokenIssuer(TEST_SECRET, settings.issuer, settings.audience, ttl, 60)
    fresh = issuer.issue_access(claims.user_id, claims.role, claims.ver, claims.sid)
    return fresh, pyjwt.decode(fresh, options={"verify_signature": False})["exp"]


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Polls predicate on the IOLoop until it holds, failing after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


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
    assert set(data) == {"client_id", "message", "role", "user_id"}
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


# -- every event reaches exactly its audience -------------------------------------------------


class Room:
    """An admin, a superadmin, a user with two tabs and a bystander user, all connected."""

    admin: dict[str, Any]
    superadmin: dict[str, Any]
    user: dict[str, Any]
    bystander: dict[str, Any]

    @classmethod
    async def open(cls, api: Api) -> Room:
        room = cls()
        room.api = api
        room.admin = await api.admin()
        room.superadmin = await api.admin("superadmin")
        room.user = await api.register()
        room.bystander = await api.register()
        room.a = await api.ws(room.admin["access_token"])
        room.sa = await api.ws(room.superadmin["access_token"])
        room.tabs = [await api.ws(room.user["access_token"]) for _ in range(2)]
        room.b = await api.ws(room.bystander["access_token"])
        return room

    @property
    def admins(self) -> list[WebSocketClientConnection]:
        return [self.a, self.sa]

    @property
    def everyone(self) -> list[WebSocketClientConnection]:
        return [self.a, self.sa, *self.tabs, self.b]

    @property
    def uid(self) -> int:
        return self.user["user"]["id"]

    async def quiet(self) -> None:
        """Asserts no socket received anything beyond what the test already read."""
        await sentinel(self.api, self.admin["access_token"], *self.everyone)


@pytest.mark.gen_test(timeout=20)
async def test_user_created_reaches_admins_only(api):
    """A registration is announced to admins and superadmins, never to plain users."""
    room = await Room.open(api)
    new = await api.register(name="Newcomer")
    for conn in room.admins:
        event = await expect(conn, "user.created")
        assert event["data"]["user_id"] == new["user"]["id"]
        assert event["data"]["name"] == "Newcomer" and event["data"]["role"] == "user"
        assert event["data"]["email"] == new["user"]["email"]
        assert RFC3339.match(event["timestamp"])
    await room.quiet()


@pytest.mark.gen_test(timeout=20)
async def test_own_profile_edit_sends_user_updated_and_profile_updated(api):
    """Editing one's own profile tells every tab user.updated then profile.updated; admins get
    user.updated only; bystanders nothing."""
    room = await Room.open(api)
    status, _, _ = await api.call("PATCH", "/api/v1/users/me", {"name": "Renamed", "age": 41},
                                  room.user["access_token"])
    assert status == 200
    for tab in room.tabs:
        updated = await expect(tab, "user.updated")
        assert updated["data"]["user_id"] == room.uid
        assert sorted(updated["data"]["changes"]) == ["age", "name"]
        assert RFC3339.match(updated["data"]["updated_at"])
        profile = await expect(tab, "profile.updated")
        assert profile["data"] == updated["data"]
    for conn in room.admins:
        assert (await expect(conn, "user.updated"))["data"]["user_id"] == room.uid
    await room.quiet()


@pytest.mark.gen_test(timeout=20)
async def test_admin_edit_sends_user_updated_without_profile_updated(api):
    """An admin editing a user tells that user and the admins user.updated, no profile.updated."""
    room = await Room.open(api)
    status, _, _ = await api.call("PATCH", f"/api/v1/users/{room.uid}", {"email": "new@x.example"},
                                  room.admin["access_token"])
    assert status == 200
    for conn in [*room.tabs, *room.admins]:
        event = await expect(conn, "user.updated")
        assert event["data"]["changes"] == ["email"]
    await room.quiet()


@pytest.mark.gen_test(timeout=20)
async def test_unchanged_profile_edit_sends_nothing(api):
    """A PATCH that changes no value publishes no event."""
    room = await Room.open(api)
    status, _, _ = await api.call("PATCH", "/api/v1/users/me",
                                  {"name": room.user["user"]["name"]}, room.user["access_token"])
    assert status == 200
    await room.quiet()


@pytest.mark.gen_test(timeout=20)
async def test_role_change_reaches_user_and_admins_once(api):
    """user.role.changed reaches every tab of the user and each admin exactly once."""
    room = await Room.open(api)
    status, _, _ = await api.call("PUT", f"/api/v1/users/{room.uid}/role", {"role": "admin"},
                                  room.superadmin["access_token"])
    assert status == 200
    for conn in [*room.tabs, *room.admins]:
        event = await expect(conn, "user.role.changed")
        assert event["data"]["user_id"] == room.uid
        assert (event["data"]["old_role"], event["data"]["new_role"]) == ("user", "admin")
        assert event["data"]["changed_by"] == room.superadmin["user"]["id"]
        assert RFC3339.match(event["data"]["changed_at"])
    await room.quiet()


@pytest.mark.gen_test(timeout=20)
async def test_password_change_reaches_only_that_user(api):
    """password.changed goes to the user's own sockets and to nobody else."""
    room = await Room.open(api)
    status, body, _ = await api.call(
        "POST", "/api/v1/users/me/password",
        {"current_password": "password123", "new_password": "password456"},
        room.user["access_token"])
    assert status == 200, body
    for tab in room.tabs:
        event = await expect(tab, "password.changed")
        assert event["data"]["user_id"] == room.uid
        assert await wait_closed(tab) == (1008, "session revoked")
    await sentinel(api, room.admin["access_token"], *room.admins, room.b)


@pytest.mark.gen_test(timeout=20)
async def test_user_deleted_reaches_admins_only(api):
    """Deleting a user announces user.deleted to admins; other users hear nothing."""
    room = await Room.open(api)
    status, _, _ = await api.call("DELETE", f"/api/v1/users/{room.uid}",
                                  token=room.admin["access_token"])
    assert status == 200
    for tab in room.tabs:
        assert await wait_closed(tab) == (1008, "account deleted")
    for conn in room.admins:
        event = await expect(conn, "user.deleted")
        assert event["data"]["user_id"] == room.uid
        assert event["data"]["deleted_by"] == room.admin["user"]["id"]
    await sentinel(api, room.admin["access_token"], *room.admins, room.b)


@pytest.mark.gen_test(timeout=20)
async def test_system_alert_reaches_every_connection(api):
    """A broadcast reaches every connection, every tab included, with its full data."""
    room = await Room.open(api)
    body = {"message": "maintenance", "priority": "high", "metadata": {"at": "02:00"}}
    status, response, _ = await api.call("POST", "/ws/broadcast", body,
                                         room.superadmin["access_token"])
    assert status == 200 and response["recipients"] == 5
    for conn in room.everyone:
        event = await expect(conn, "system.alert")
        assert event["data"] == {"message": "maintenance", "priority": "high",
                                 "metadata": {"at": "02:00"},
                                 "sent_by": room.superadmin["user"]["id"]}
    await room.quiet()


@pytest.mark.gen_test(timeout=20)
async def test_health_flip_reaches_admins_only_and_health_returns_503(api, monkeypatch):
    """When the database check fails, admins get health.status.changed and /health says 503."""
    room = await Room.open(api)

    def broken() -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(services.health, "_ping_database", broken)
    assert await api.ctx.health.check() == ("error", {"database": "error"})
    for conn in room.admins:
        event = await expect(conn, "health.status.changed")
        assert event["data"]["status"] == "error" and event["data"]["previous_status"] == "ok"
        assert event["data"]["checks"] == {"database": "error"}
    status, body, _ = await api.call("GET", "/health")
    assert status == 503 and body["status"] == "error"
    await room.quiet()  # the repeated failure in /health is not a flip: nothing new
    monkeypatch.undo()
    assert (await api.ctx.health.check())[0] == "ok"
    for conn in room.admins:
        event = await expect(conn, "health.status.changed")
        assert (event["data"]["status"], event["data"]["previous_status"]) == ("ok", "error")
    await room.quiet()


# -- live consequences ------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_demoted_admin_stops_receiving_admin_events(api):
    """After a demotion the former admin's open socket no longer gets admin-only events."""
    boss = await api.admin("superadmin")
    demoted = await api.admin()
    boss_ws, demoted_ws = await api.ws(boss["access_token"]), await api.ws(demoted["access_token"])
    demoted_id = demoted["user"]["id"]
    status, _, _ = await api.call("PUT", f"/api/v1/users/{demoted_id}/role", {"role": "user"},
                                  boss["access_token"])
    assert status == 200
    for conn in (boss_ws, demoted_ws):
        assert (await expect(conn, "user.role.changed"))["data"]["new_role"] == "user"
    assert api.ctx.hub.get_stats()["by_role"] == {"superadmin": 1, "user": 1}
    await api.register()
    await expect(boss_ws, "user.created")
    await sentinel(api, boss["access_token"], boss_ws, demoted_ws)


@pytest.mark.gen_test(timeout=20)
async def test_promoted_user_starts_receiving_admin_events(api):
    """After a promotion the user's open socket receives admin-only events at once."""
    boss = await api.admin()
    promoted = await api.register()
    promoted_ws = await api.ws(promoted["access_token"])
    status, _, _ = await api.call("PUT", f"/api/v1/users/{promoted['user']['id']}/role",
                                  {"role": "admin"}, boss["access_token"])
    assert status == 200
    await expect(promoted_ws, "user.role.changed")
    new = await api.register()
    event = await expect(promoted_ws, "user.created")
    assert event["data"]["user_id"] == new["user"]["id"]
    await sentinel(api, boss["access_token"], promoted_ws)


@pytest.mark.gen_test(timeout=20)
async def test_password_change_revokes_older_sessions_but_not_the_new_one(api):
    """A password change closes sockets of every older session with 1008 "session revoked",
    while a socket opened with the new token stays open."""
    admin = await api.admin()
    user = await api.register()
    other_session = await api.login(user["user"]["email"])
    old_tabs = [await api.ws(user["access_token"]), await api.ws(other_session["access_token"])]
    status, body, _ = await api.call(
        "POST", "/api/v1/users/me/password",
        {"current_password": "password123", "new_password": "password456"},
        user["access_token"])
    assert status == 200, body
    fresh = await api.ws(body["data"]["access_token"])
    for tab in old_tabs:
        await expect(tab, "password.changed")
        assert await wait_closed(tab) == (1008, "session revoked")
    await wait_until(lambda: api.ctx.hub.user_connection_count(user["user"]["id"]) == 1)
    await sentinel(api, admin["access_token"], fresh)
    status, _, _ = await reject(f"{api.ws_url}/ws?token={user['access_token']}")
    assert status == 401


@pytest.mark.gen_test(timeout=20)
async def test_logout_closes_that_sessions_sockets_only(api):
    """Logging out closes the sockets of that session with 1008; another session stays open."""
    admin = await api.admin()
    user = await api.register()
    other = await api.login(user["user"]["email"])
    session_tabs = [await api.ws(user["access_token"]) for _ in range(2)]
    other_ws = await api.ws(other["access_token"])
    status, _, _ = await api.call("POST", "/api/v1/auth/logout", token=user["access_token"])
    assert status == 200
    for tab in session_tabs:
        assert await wait_closed(tab) == (1008, "session revoked")
    await sentinel(api, admin["access_token"], other_ws)


@pytest.mark.gen_test(timeout=20)
async def test_deleted_account_sockets_close_with_account_deleted(api):
    """Deleting an account closes all its sockets with 1008 "account deleted" and unregisters."""
    admin = await api.admin()
    user = await api.register()
    tabs = [await api.ws(user["access_token"]) for _ in range(2)]
    status, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                  token=admin["access_token"])
    assert status == 200
    for tab in tabs:
        assert await wait_closed(tab) == (1008, "account deleted")
    assert api.ctx.hub.user_connection_count(user["user"]["id"]) == 0


@pytest.mark.gen_test(timeout=20)
async def test_token_expiry_closes_socket_with_token_expired(api):
    """A socket whose access token expires while connected is closed with 1008 "token expired"."""
    user = await api.register()
    short, exp = reissue(api, user["access_token"], 2)
    conn = await api.ws(short)
    assert await wait_closed(conn, timeout=5) == (1008, "token expired")
    assert time.time() >= exp - 0.05
    await wait_until(lambda: not api.ctx.hub.clients, what="unregister")


@pytest.mark.gen_test(timeout=20)
async def test_auth_refresh_keeps_socket_open_past_original_expiry(api):
    """An in-band auth.refresh with a fresh token of the same user replaces the expiry timer."""
    admin = await api.admin()
    user = await api.register()
    short, exp = reissue(api, user["access_token"], 2)
    fresh, fresh_exp = reissue(api, user["access_token"], 120)
    conn = await api.ws(short)
    await conn.write_message(json.dumps({"type": "auth.refresh", "data": {"token": fresh}}))
    refreshed = await expect(conn, "auth.refreshed")
    assert refreshed["data"] == {"expires_at": fresh_exp}
    # Waiting for wall-clock time to pass is the condition itself here.
    await asyncio.sleep(max(0.0, exp + 0.5 - time.time()))
    assert conn.close_code is None
    await sentinel(api, admin["access_token"], conn)


@pytest.mark.gen_test
async def test_auth_refresh_with_another_users_token_closes_1008(api):
    """auth.refresh with a valid token of a different user closes the socket with 1008."""
    user, other = await api.register(), await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(json.dumps(
        {"type": "auth.refresh", "data": {"token": other["access_token"]}}))
    code, reason = await wait_closed(conn)
    assert code == 1008 and "another user" in reason


@pytest.mark.gen_test
async def test_auth_refresh_with_invalid_token_closes_1008(api):
    """auth.refresh with an invalid token closes the socket with 1008."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(json.dumps({"type": "auth.refresh", "data": {"token": "bogus"}}))
    code, reason = await wait_closed(conn)
    assert code == 1008 and reason.startswith("refresh rejected")


@pytest.mark.gen_test
async def test_auth_refresh_with_revoked_token_closes_1008(api):
    """auth.refresh with a token whose session was revoked closes the socket with 1008."""
    user = await api.register()
    other_session = await api.login(user["user"]["email"])
    conn = await api.ws(other_session["access_token"])
    await api.call("POST", "/api/v1/auth/logout", token=user["access_token"])
    await conn.write_message(json.dumps(
        {"type": "auth.refresh", "data": {"token": user["access_token"]}}))
    code, reason = await wait_closed(conn)
    assert code == 1008 and reason.startswith("refresh rejected")


@pytest.mark.gen_test
async def test_auth_refresh_without_token_gets_error_event(api):
    """auth.refresh missing data.token is answered with an error event, not a close."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(json.dumps({"type": "auth.refresh", "data": {}}))
    event = await expect(conn, "error")
    assert event["data"]["code"] == "invalid_message"
    await conn.write_message(json.dumps({"type": "auth.refresh",
                                         "data": {"token": user["access_token"]}}))
    await expect(conn, "auth.refreshed")


# -- inbound messages -------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_invalid_json_gets_error_event_and_socket_stays_open(api):
    """Malformed JSON is answered with an error event and the connection keeps working."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message("{not json")
    event = await expect(conn, "error")
    assert event["data"]["code"] == "invalid_json" and event["data"]["message"]
    assert RFC3339.match(event["timestamp"])
    await conn.write_message("[1, 2]")
    assert (await expect(conn, "error"))["data"]["code"] == "invalid_message"
    await conn.write_message(json.dumps({"type": "ping"}))
    assert (await expect(conn, "error"))["data"]["code"] == "unknown_type"
    assert conn.close_code is None and len(api.ctx.hub.clients) == 1


@pytest.mark.gen_test
async def test_unknown_type_gets_error_event(api):
    """A well-formed message of an unknown type gets an unknown_type error event."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(json.dumps({"type": "chat.send", "data": {"text": "hi"}}))
    event = await expect(conn, "error")
    assert event["data"]["code"] == "unknown_type" and "chat.send" in event["data"]["message"]


@pytest.mark.gen_test
async def test_binary_message_closes_1003(api):
    """A binary frame closes the connection with 1003 (unsupported data)."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message(b"\x00\x01\x02", binary=True)
    code, _ = await wait_closed(conn)
    assert code == 1003
    await wait_until(lambda: not api.ctx.hub.clients, what="unregister")


@pytest.mark.gen_test
async def test_message_over_64_kib_closes_1009(api):
    """An inbound message larger than 64 KiB closes the connection with 1009."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    await conn.write_message("x" * 64 * 1024)  # exactly the limit is accepted
    assert (await expect(conn, "error"))["data"]["code"] == "invalid_json"
    await conn.write_message("x" * (64 * 1024 + 1))
    code, _ = await wait_closed(conn)
    assert code == 1009


# -- slow consumer ----------------------------------------------------------------------------


class RawClient:
    """A WebSocket client speaking the protocol by hand, so a test controls every read."""

    def __init__(self, stream: IOStream, client_id: str) -> None:
        self.stream = stream
        self.client_id = client_id

    @classmethod
    async def connect(cls, api: Api, token: str, rcvbuf: int = 0) -> RawClient:
        """Handshakes (optionally with a tiny receive buffer) and reads the welcome."""
        url = urlsplit(api.base_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        stream = IOStream(sock)
        await stream.connect((url.hostname, url.port))
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.write(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await stream.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(stream, "")
        opcode, payload = await client.read_frame()
        assert opcode == 0x1
        client.client_id = json.loads(payload)["data"]["client_id"]
        return client

    async def read_frame(self) -> tuple[int, bytes]:
        """Returns (opcode, payload) of the next unmasked server frame."""
        first, second = await self.stream.read_bytes(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.stream.read_bytes(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.stream.read_bytes(8), "big")
        return first & 0x0F, await self.stream.read_bytes(length) if length else b""

    def close(self) -> None:
        self.stream.close()


@pytest.mark.gen_test(timeout=30)
async def test_slow_consumer_is_dropped_while_healthy_client_gets_every_message(api):
    """A client that stops reading is closed and unregistered; a healthy one receives all."""
    admin = await api.admin()
    user = await api.register()
    healthy = await api.ws(user["access_token"])
    stalled = await RawClient.connect(api, user["access_token"], rcvbuf=4096)
    stalled_id = stalled.client_id  # it never reads again
    assert stalled_id in api.ctx.hub.clients
    received: list[str] = []

    async def read_all() -> None:
        while True:
            message = await healthy.read_message()
            if message is None:
                return
            received.append(json.loads(message)["data"]["message"])

    reader = asyncio.ensure_future(read_all())
    metadata = {"pad": "p" * 15_000}
    sent: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    extra = 5  # keep publishing a few after the drop to show the healthy client is unaffected
    while extra:
        assert loop.time() < deadline, f"stalled client not dropped after {len(sent)} messages"
        text = f"{len(sent):05d}" + "m" * 4000
        status, body, _ = await api.call(
            "POST", "/ws/broadcast", {"message": text, "metadata": metadata},
            admin["access_token"])
        assert status == 200, body
        sent.append(text)
        if stalled_id not in api.ctx.hub.clients:
            extra -= 1
    await wait_until(lambda: len(received) >= len(sent), timeout=10, what="healthy client")
    assert received == sent
    assert api.ctx.hub.get_stats()["slow_consumers_dropped"] == 1
    assert stalled_id not in api.ctx.hub.clients and len(api.ctx.hub.clients) == 1
    healthy.close()
    stalled.close()
    await reader


@pytest.mark.gen_test(timeout=20)
@pytest.mark.settings(ping_interval=0.2, ping_timeout=0.2)
async def test_heartbeat_drops_a_client_that_never_pongs(api):
    """The server pings on --ping-interval; a client silent past --ping-timeout is closed,
    while a client that answers pings (as browsers and Tornado do) stays connected."""
    admin = await api.admin()
    healthy = await api.ws(admin["access_token"])
    mute = await RawClient.connect(api, admin["access_token"])
    pings = 0
    while True:
        opcode, payload = await asyncio.wait_for(mute.read_frame(), 5)
        if opcode == 0x9:  # ping: deliberately not answered
            pings += 1
            continue
        assert opcode == 0x8, (opcode, payload)
        break
    assert pings >= 1
    assert int.from_bytes(payload[:2], "big") == 1000 and payload[2:] == b"ping timed out"
    mute.close()
    await wait_until(lambda: mute.client_id not in api.ctx.hub.clients, what="unregister")
    await sentinel(api, admin["access_token"], healthy)


@pytest.mark.gen_test
@pytest.mark.settings(websocket_compression=True)
async def test_compressed_connection_receives_events(api):
    """With --websocket-compression on, a client that negotiates permessage-deflate still gets
    its events (the per-connection fallback instead of the shared frame)."""
    admin = await api.admin()
    compressed = await api.ws(admin["access_token"], compression_options={})
    plain = await api.ws(admin["access_token"])
    assert compressed.protocol._compressor is not None
    new = await api.register()
    for conn in (compressed, plain):
        assert (await expect(conn, "user.created"))["data"]["user_id"] == new["user"]["id"]
    await sentinel(api, admin["access_token"], compressed, plain)


# -- /ws/stats and /ws/broadcast --------------------------------------------------------------


@pytest.mark.gen_test
async def test_stats_and_broadcast_require_a_valid_token(api):
    """/ws/stats and /ws/broadcast answer 401 without a token or with an invalid one."""
    for token in (None, "invalid.token.here"):
        status, body, _ = await api.call("GET", "/ws/stats", token=token)
        assert status == 401
        assert_error_envelope(body, "unauthorized")
        status, body, _ = await api.call("POST", "/ws/broadcast", {"message": "x"}, token)
        assert status == 401
        assert_error_envelope(body, "unauthorized")


@pytest.mark.gen_test
async def test_stats_and_broadcast_are_forbidden_to_plain_users(api):
    """A plain user gets 403 from /ws/stats and /ws/broadcast and nothing is broadcast."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    status, body, _ = await api.call("GET", "/ws/stats", token=user["access_token"])
    assert status == 403
    assert_error_envelope(body, "forbidden")
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": "x"},
                                     user["access_token"])
    assert status == 403
    assert_error_envelope(body, "forbidden")
    admin = await api.admin()
    await sentinel(api, admin["access_token"], conn)


@pytest.mark.gen_test
async def test_stats_returns_the_seed_shape(api):
    """GET /ws/stats returns the stats object itself: totals, by_role, unique_users, timestamp."""
    admin = await api.admin()
    user = await api.register()
    conns = [await api.ws(user["access_token"]) for _ in range(2)]
    conns.append(await api.ws(admin["access_token"]))
    status, body, _ = await api.call("GET", "/ws/stats", token=admin["access_token"])
    assert status == 200
    assert "success" not in body
    assert body["total_clients"] == 3
    assert body["by_role"] == {"admin": 1, "user": 2}
    assert body["unique_users"] == 2
    assert RFC3339.match(body["timestamp"])


@pytest.mark.gen_test
async def test_broadcast_returns_the_seed_shape(api):
    """POST /ws/broadcast answers success, message, recipients and the stats."""
    admin = await api.admin("superadmin")
    user = await api.register()
    conn = await api.ws(user["access_token"])
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": "Test broadcast",
                                                               "priority": "normal"},
                                     admin["access_token"])
    assert status == 200
    assert set(body) == {"success", "message", "recipients", "stats"}
    assert body["success"] is True and body["message"] == "Broadcast sent successfully"
    assert body["recipients"] == 1
    assert body["stats"]["total_clients"] == 1 and body["stats"]["by_role"] == {"user": 1}
    event = await expect(conn, "system.alert")
    assert event["data"]["priority"] == "normal" and event["data"]["metadata"] == {}


@pytest.mark.gen_test
async def test_broadcast_priority_defaults_to_normal(api):
    """A broadcast without priority is sent with priority normal."""
    admin = await api.admin()
    conn = await api.ws(admin["access_token"])
    status, _, _ = await api.call("POST", "/ws/broadcast", {"message": "hi"},
                                  admin["access_token"])
    assert status == 200
    assert (await expect(conn, "system.alert"))["data"]["priority"] == "normal"


@pytest.mark.gen_test
async def test_broadcast_accepts_each_priority_and_limits(api):
    """Every allowed priority, a 4096-character message and 16 KiB of metadata are accepted."""
    admin = await api.admin()
    for priority in ("low", "normal", "high", "critical"):
        status, body, _ = await api.call("POST", "/ws/broadcast",
                                         {"message": "x", "priority": priority},
                                         admin["access_token"])
        assert status == 200, body
    metadata = {"k": "v" * (16 * 1024 - len('{"k":""}'))}
    status, body, _ = await api.call("POST", "/ws/broadcast",
                                     {"message": "m" * 4096, "metadata": metadata},
                                     admin["access_token"])
    assert status == 200, body


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [
    {},
    {"message": ""},
    {"message": "m" * 4097},
    {"message": 42},
    {"message": "x", "priority": "urgent"},
    {"message": "x", "metadata": ["not", "an", "object"]},
    {"message": "x", "metadata": {"k": "v" * (16 * 1024)}},
    {"message": "x", "unexpected": True},
    ["message"],
], ids=["missing", "empty", "too-long", "not-string", "bad-priority", "metadata-list",
        "metadata-too-big", "unknown-field", "not-object"])
async def test_broadcast_rejects_invalid_input_with_400(api, body):
    """Broadcast input outside the documented rules is rejected with 400 and nothing is sent."""
    admin = await api.admin()
    conn = await api.ws(admin["access_token"])
    status, response, _ = await api.call("POST", "/ws/broadcast", body, admin["access_token"])
    assert status == 400, response
    assert response["success"] is False and response["error"]["message"]
    await sentinel(api, admin["access_token"], conn)


@pytest.mark.gen_test
async def test_broadcast_rejects_malformed_json_with_400(api):
    """A broadcast body that is not JSON is a 400."""
    admin = await api.admin()
    status, body, _ = await api.call("POST", "/ws/broadcast", raw=b"{oops",
                                     token=admin["access_token"])
    assert status == 400
    assert_error_envelope(body, "bad_request")


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
    api.ctx.hub.close_all(1001, "server shutting down")
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


# -- logging ----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_token_never_reaches_a_log_line_even_on_a_server_error(api, caplog, monkeypatch):
    """The ?token= value is redacted from the access log and from error logs of a failed /ws."""
    user = await api.register()
    token = user["access_token"]
    caplog.set_level(logging.DEBUG)
    conn = await api.ws(token)
    conn.close()

    def broken(claims):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(api.ctx.auth, "check_claims", broken)
    response = await AsyncHTTPClient().fetch(f"{api.base_url}/ws?token={token}",
                                             raise_error=False)
    assert response.code == 500
    assert "exploded" not in response.body.decode()
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "/ws" in logged
    assert token not in logged
    assert token.split(".")[2] not in logged


@pytest.mark.gen_test
async def test_upgraded_socket_keeps_no_handshake_state_or_token(api):
    """Once open, a socket's handler holds no token, request headers or user row."""
    user = await api.register()
    token = user["access_token"]
    conn = await api.ws(token)
    (client,) = api.ctx.hub.clients.values()
    handler = client.conn
    assert handler.principal is None
    assert len(handler.request.headers) == 0 and handler.request.query_arguments == {}
    assert token not in handler.request.uri and "token=REDACTED" in handler.request.uri
    assert "write" not in vars(handler)  # Tornado's per-instance guards were not planted
    await api.call("POST", "/ws/broadcast", {"message": "still works"},
                   (await api.admin())["access_token"])
    assert (await expect(conn, "system.alert"))["data"]["message"] == "still works"


@pytest.mark.gen_test
@pytest.mark.settings(socket_send_buffer=65536)
async def test_socket_send_buffer_is_capped_to_the_configured_size(api):
    """--socket-send-buffer sets SO_SNDBUF on each upgraded socket (Linux reports it doubled)."""
    user = await api.register()
    await api.ws(user["access_token"])
    (client,) = api.ctx.hub.clients.values()
    sock = client.conn.ws_connection.stream.socket
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (65536, 2 * 65536)
