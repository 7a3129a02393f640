"""The admin-only /ws/stats and /ws/broadcast endpoints."""

from __future__ import annotations

import pytest
from wsutil import (
    RFC3339,
    assert_error_envelope,
    expect,
    sentinel,
)

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

