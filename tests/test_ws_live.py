"""Live consequences on open sockets: role re-indexing, revocation, expiry and in-band refresh."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import wait_closed
from wsutil import (
    expect,
    reissue,
    reject,
    sentinel,
    wait_until,
)

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

