"""GET /sse with a real HTTP client: refusals before the stream, every v1 audience, rooms, the
cursor and resume (every event counted: no gap, no duplicate), bad cursors, revocation and
expiry, slow consumers, pings, and 1,000 concurrent listeners."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from sseutil import SseClient, open_sse
from wsutil import wait_until

from hub.events import Event
from hub.messages import ALL, ToChannel

ALERT = "system.alert"


async def alerts(api, admin_token: str, numbers) -> None:
    """Broadcasts one system.alert per number (its message is the number)."""
    for n in numbers:
        status, body, _ = await api.call("POST", "/ws/broadcast", {"message": str(n)},
                                         token=admin_token)
        assert status == 200, body


async def say(api, token: str, room: str, n: int) -> None:
    """Publishes {"n": n} to a room over REST."""
    status, body, _ = await api.call("POST", f"/api/v1/rooms/{room}/messages", {"data": {"n": n}},
                                     token=token)
    assert status == 201, body


def numbers(sse: SseClient) -> list[int]:
    return [int(e.data["data"]["message"]) for e in sse.of_type(ALERT)]


def said(sse: SseClient) -> list[int]:
    return [e.data["data"]["body"]["n"] for e in sse.of_type("channel.message")]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(socket_send_buffer=65536)
async def test_the_stream_socket_has_the_capped_send_buffer(api):
    """--socket-send-buffer bounds what a stalled SSE listener holds in the kernel: its socket
    inherits SO_SNDBUF from the listening socket (Linux reports it doubled)."""
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"])
    await sse.wait(lambda s: s.of_type("connection.established"), what="welcome")
    (client,) = api.ctx.hub.clients.values()
    assert client.conn.stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (
        65536, 2 * 65536)


@pytest.mark.gen_test(timeout=30)
async def test_the_stream_starts_with_its_headers_retry_and_the_welcome(api):
    """200 text/event-stream, no-cache, unbuffered; `retry: 2000`; connection.established
    first, carrying the feed position as its id; the socket sends without Nagle's delay."""
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"])
    assert sse.status == 200
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert sse.headers["cache-control"] == "no-cache"
    assert sse.headers["x-accel-buffering"] == "no"
    await sse.wait(lambda s: s.of_type("recovery"), what="recovery")
    assert sse.retry == 2000
    welcome = sse.events[0]
    assert welcome.type == "connection.established"
    assert welcome.data["data"]["user_id"] == user["user"]["id"]
    epoch, offset = welcome.data["data"]["epoch"], welcome.data["data"]["offset"]
    assert welcome.id == f"{epoch}:{offset}"
    assert sse.of_type("recovery")[0].data["data"] == {
        "streams": [{"channel": None, "recovered": False, "missed": 0}]}
    assert api.ctx.hub.get_stats()["by_transport"] == {"websocket": 0, "sse": 1}
    (client,) = api.ctx.hub.clients.values()  # events leave at once (TCP_NODELAY, inherited)
    assert client.conn.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    registry = api.ctx.metrics.registry
    assert registry.get_sample_value("events_connections_opened_total",
                                     {"transport": "sse"}) == 1
    assert registry.get_sample_value("events_connections_by_transport",
                                     {"transport": "sse"}) == 1
    sse.close()
    await wait_until(lambda: api.ctx.hub.get_stats()["by_transport"]["sse"] == 0,
                     what="the stream unregistered")
    assert registry.get_sample_value("events_connections_closed_total",
                                     {"code": "none", "transport": "sse"}) == 1


@pytest.mark.gen_test(timeout=30)
async def test_refusals_come_before_the_stream_with_the_error_envelope(api):
    """No token or a bad one: 401; a private room of others: 403; no such room: 404; a
    channel that is not a room: 400; the token in a bearer header works too."""
    owner, other = await api.register(), await api.register()
    status, _, _ = await api.call("POST", "/api/v1/rooms", {"name": "secret", "private": True},
                                  token=owner["access_token"])
    assert status == 201
    cases = [(None, "", 401), ("nope", "", 401), (other["access_token"], "room:secret", 403),
             (other["access_token"], "room:nowhere", 404), (other["access_token"], "feed", 400)]
    for token, channels, code in cases:
        sse = await open_sse(api.base_url, token, channels)
        assert sse.status == code, (token, channels)
        assert json.loads(sse.body)["success"] is False
    sse = await open_sse(api.base_url, headers={"Authorization":
                                                f"Bearer {owner['access_token']}"},
                         channels="room:secret")
    assert sse.status == 200
    sse.close()


@pytest.mark.gen_test(timeout=30)
async def test_every_audience_reaches_exactly_its_listeners(api):
    """A broadcast reaches all; user.created only admins; a profile edit its user (and
    admins); a demoted admin's stream stops getting admin events at once."""
    admin = await api.admin()
    user = await api.register()
    s_admin = await open_sse(api.base_url, admin["access_token"])
    s_user = await open_sse(api.base_url, user["access_token"])
    await alerts(api, admin["access_token"], [1])
    newcomer = await api.register()
    status, _, _ = await api.call("PATCH", "/api/v1/users/me", {"name": "Renamed"},
                                  token=user["access_token"])
    assert status == 200
    await s_admin.wait(lambda s: s.of_type("user.updated"), what="admin sees user.updated")
    await s_user.wait(lambda s: s.of_type("profile.updated"), what="user sees profile.updated")
    assert numbers(s_admin) == numbers(s_user) == [1]
    assert [e.data["data"]["user_id"] for e in s_admin.of_type("user.created")] == [
        newcomer["user"]["id"]]
    assert s_user.of_type("user.created") == []
    superadmin = await api.admin("superadmin")
    status, _, _ = await api.call("PUT", f"/api/v1/users/{admin['user']['id']}/role",
                                  {"role": "user"}, token=superadmin["access_token"])
    assert status == 200
    await s_admin.wait(lambda s: s.of_type("user.role.changed"), what="demotion")
    created = len(s_admin.of_type("user.created"))  # the newcomer's and the superadmin's
    await api.register()
    await alerts(api, superadmin["access_token"], [2])
    await s_admin.wait(lambda s: numbers(s) == [1, 2], what="the later alert")
    assert len(s_admin.of_type("user.created")) == created == 2  # none after the demotion
    s_admin.close()
    s_user.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_dropped_stream_resumes_every_stream_exactly_once_in_order(api):
    """Alerts and room messages sent while the listener was away arrive after the reconnect
    with Last-Event-ID, each once and in order, before the recovery event (recovered, with
    the missed counts); nothing is duplicated across the cut."""
    admin = await api.admin()
    user = await api.register()
    token = user["access_token"]
    sse = await open_sse(api.base_url, token, "room:lobby")
    await sse.wait(lambda s: s.of_type("recovery"))
    for n in range(1, 6):
        await alerts(api, admin["access_token"], [n])
        await say(api, token, "lobby", n)
    await sse.wait(lambda s: numbers(s) == [1, 2, 3, 4, 5] and said(s) == [1, 2, 3, 4, 5])
    cursor = sse.last_id
    sse.close()
    for n in range(6, 11):
        await alerts(api, admin["access_token"], [n])
        await say(api, token, "lobby", n)
    again = await open_sse(api.base_url, token, "room:lobby", last_id=cursor)
    await again.wait(lambda s: s.of_type("recovery"), what="recovery")
    assert numbers(again) == [6, 7, 8, 9, 10] and said(again) == [6, 7, 8, 9, 10]
    recovery = again.of_type("recovery")[0]
    assert recovery.data["data"]["streams"] == [
        {"channel": None, "recovered": True, "missed": 5},
        {"channel": "room:lobby", "recovered": True, "missed": 5}]
    assert again.events.index(recovery) == len(again.events) - 1
    await alerts(api, admin["access_token"], [11])
    await say(api, token, "lobby", 11)
    await again.wait(lambda s: numbers(s)[-1:] == [11] and said(s)[-1:] == [11])
    assert numbers(again) == list(range(6, 12)) and said(again) == list(range(6, 12))
    again.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_query_parameter_resumes_and_the_header_wins_over_it(api):
    """?last_event_id= resumes like the header; given both, the header's cursor is used."""
    admin = await api.admin()
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"])
    await alerts(api, admin["access_token"], [1])
    await sse.wait(lambda s: numbers(s) == [1])
    after_one = sse.last_id
    await alerts(api, admin["access_token"], [2])
    await sse.wait(lambda s: numbers(s) == [1, 2])
    after_two = sse.last_id
    sse.close()
    await alerts(api, admin["access_token"], [3])
    by_query = await open_sse(api.base_url, user["access_token"],
                              query=f"last_event_id={after_one}")
    await by_query.wait(lambda s: s.of_type("recovery"))
    assert numbers(by_query) == [2, 3]
    both = await open_sse(api.base_url, user["access_token"], last_id=after_two,
                          query=f"last_event_id={after_one}")
    await both.wait(lambda s: s.of_type("recovery"))
    assert numbers(both) == [3]
    by_query.close()
    both.close()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("cursor", ["garbage", "0123456789abcdef:3", "::,,=",
                                   "x" * 9000])
async def test_a_cursor_that_cannot_be_honoured_says_so_and_goes_live(api, cursor):
    """Garbage or a foreign epoch: recovered false for the stream, then live events."""
    admin = await api.admin()
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"], "room:lobby", last_id=cursor)
    await sse.wait(lambda s: s.of_type("recovery"))
    streams = sse.of_type("recovery")[0].data["data"]["streams"]
    assert [s["recovered"] for s in streams] == [False, False]
    await alerts(api, admin["access_token"], [7])
    await sse.wait(lambda s: numbers(s) == [7])
    sse.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_trimmed_position_is_not_recovered(api):
    """A cursor older than the stream's retained history answers recovered false."""
    await api.admin()
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"])
    await sse.wait(lambda s: s.of_type("recovery"))
    cursor = sse.last_id
    sse.close()
    size = api.ctx.broker.log.size
    for n in range(size + 5):
        api.ctx.hub.publish(Event(ALERT, {"message": str(n)}), ALL, logged=True)
    again = await open_sse(api.base_url, user["access_token"], last_id=cursor)
    await again.wait(lambda s: s.of_type("recovery"))
    assert again.of_type("recovery")[0].data["data"]["streams"][0]["recovered"] is False
    assert numbers(again) == []
    again.close()


@pytest.mark.gen_test(timeout=30)
async def test_typing_carries_no_id_and_presence_reaches_the_room(api):
    """An event without an offset (typing, presence) has no id line; a room message does."""
    listener, talker = await api.register(), await api.register(name="Talker")
    sse = await open_sse(api.base_url, listener["access_token"], "room:lobby")
    await sse.wait(lambda s: s.of_type("recovery"))
    api.ctx.hub.publish(Event("typing", {"user_id": 99, "name": "T", "active": True},
                              channel="room:lobby"), (ToChannel("room:lobby"),))
    await say(api, talker["access_token"], "lobby", 1)
    await sse.wait(lambda s: s.of_type("typing") and s.of_type("channel.message"))
    assert sse.of_type("typing")[0].id is None
    assert sse.of_type("channel.message")[0].id is not None
    sse.close()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("how", ["logout", "password", "delete"])
async def test_revocation_ends_the_stream_with_a_close_event(api, how):
    """Logout, a password change and account deletion end the stream with `close` 1008."""
    admin = await api.admin()
    user = await api.register()
    token = user["access_token"]
    sse = await open_sse(api.base_url, token)
    await sse.wait(lambda s: s.of_type("recovery"))
    if how == "logout":
        status, _, _ = await api.call("POST", "/api/v1/auth/logout", {}, token=token)
    elif how == "password":
        status, _, _ = await api.call("POST", "/api/v1/users/me/password",
                                      {"current_password": "password123",
                                       "new_password": "password456"}, token=token)
    else:
        status, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                      token=admin["access_token"])
    assert status == 200
    await sse.wait(lambda s: s.closed, what="the end of the stream")
    (close,) = sse.of_type("close")
    assert close.data["data"]["code"] == 1008
    assert api.ctx.hub.get_stats()["by_transport"]["sse"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_an_expiring_token_ends_the_stream(api):
    """The stream ends with `close` 1008 "token expired" when the token does."""
    from wsutil import reissue

    user = await api.register()
    token, _ = reissue(api, user["access_token"], ttl=2)
    sse = await open_sse(api.base_url, token)
    await sse.wait(lambda s: s.closed, timeout=10, what="expiry")
    assert sse.of_type("close")[0].data["data"] == {"code": 1008, "reason": "token expired"}


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(sse_ping_interval=0.2)
async def test_an_idle_stream_gets_ping_comments(api):
    """`: ping` comments keep an idle stream alive for proxies."""
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"])
    await sse.wait(lambda s: s.comments >= 3, what="three pings")
    sse.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_listener_that_stops_reading_is_dropped_as_a_slow_consumer(api):
    """A stream whose client reads nothing is closed once its backlog passes the limits;
    a healthy listener keeps every event."""
    user = await api.register()
    healthy = await open_sse(api.base_url, user["access_token"])
    stalled = await open_sse(api.base_url, user["access_token"])
    await stalled.wait(lambda s: s.of_type("recovery"))
    stalled._task.cancel()  # stops reading; the kernel buffers fill up
    pad = "x" * 8000
    for n in range(1000):
        api.ctx.hub.publish(Event(ALERT, {"message": str(n), "pad": pad}), ALL, logged=True)
        if n % 50 == 0:
            await asyncio.sleep(0.01)
    await healthy.wait(lambda s: len(numbers(s)) == 1000, timeout=30, what="every alert")
    assert numbers(healthy) == list(range(1000))
    assert api.ctx.hub.slow_consumers_dropped == 1
    assert api.ctx.hub.get_stats()["by_transport"]["sse"] == 1
    healthy.close()
    stalled.close()


@pytest.mark.gen_test(timeout=120)
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.settings(rate_limits=False)
async def test_a_thousand_listeners_each_get_every_broadcast_once(api):
    """1,000 concurrent SSE streams: each receives each of three alerts exactly once."""
    admin = await api.admin()
    user = await api.register()
    clients = []
    for _ in range(10):
        clients += await asyncio.gather(*(open_sse(api.base_url, user["access_token"])
                                          for _ in range(100)))
    assert all(c.status == 200 for c in clients)
    await asyncio.gather(*(c.wait(lambda s: s.of_type("recovery")) for c in clients))
    assert api.ctx.hub.get_stats()["by_transport"]["sse"] == 1000
    await alerts(api, admin["access_token"], [1, 2, 3])
    await asyncio.gather(*(c.wait(lambda s: len(numbers(s)) >= 3, timeout=60)
                           for c in clients))
    assert all(numbers(c) == [1, 2, 3] for c in clients)
    for c in clients:
        c.close()


@pytest.mark.gen_test(timeout=30)
async def test_rest_publish_stores_the_message_like_the_socket_verb(api):
    """POST /api/v1/rooms/{name}/messages answers 201 with id and offset; the message is
    delivered and kept in the room's history; the room's rules apply."""
    owner, other = await api.register(), await api.register()
    status, body, _ = await api.call("POST", "/api/v1/rooms/lobby/messages",
                                     {"data": {"text": "hi"}}, token=owner["access_token"])
    assert status == 201 and {"id", "offset", "channel", "sent_at"} <= set(body["data"])
    await api.ctx.messages.flush()
    status, history, _ = await api.call("GET", "/api/v1/rooms/lobby/messages",
                                        token=owner["access_token"])
    assert [m["id"] for m in history["data"]["messages"]] == [body["data"]["id"]]
    await api.call("POST", "/api/v1/rooms", {"name": "club", "private": True},
                   token=owner["access_token"])
    for token, payload, code in ((other, {"data": {"x": 1}}, 403),
                                 (owner, {"data": "text"}, 400), (owner, {}, 400),
                                 (owner, {"data": {}, "extra": 1}, 400)):
        status, _, _ = await api.call("POST", "/api/v1/rooms/club/messages", payload,
                                      token=token["access_token"])
        assert status == code, payload
    status, _, _ = await api.call("POST", "/api/v1/rooms/nowhere/messages", {"data": {}},
                                  token=owner["access_token"])
    assert status == 404


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(cors_origins=("http://app.example.test",))
async def test_an_eventsource_on_an_allowed_origin_gets_cors_headers(api):
    """A page on an origin in --cors-origins may read the stream; another origin's may not."""
    user = await api.register()
    allowed = await open_sse(api.base_url, user["access_token"],
                             headers={"Origin": "http://app.example.test"})
    assert allowed.headers["access-control-allow-origin"] == "http://app.example.test"
    assert allowed.headers["vary"] == "Origin"
    other = await open_sse(api.base_url, user["access_token"],
                           headers={"Origin": "http://evil.example.test"})
    assert "access-control-allow-origin" not in other.headers
    allowed.close()
    other.close()
