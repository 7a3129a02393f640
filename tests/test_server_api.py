"""The server API against the real server: API keys, scopes, every route and its errors, and
the Idempotency-Key promise counted at a client."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from conftest import next_event, wait_closed
from tornado.websocket import websocket_connect

from hub.messages import FEED
from models.apikey import ApiKey, IdempotentRequest
from services.apikeys import blocking, create_key


async def new_key(api, scopes: str = "publish,notify,presence,history,disconnect") -> str:
    """Creates a key with scopes directly in the database; returns the key."""
    made = await api.ctx.run(create_key, "billing", scopes)
    return made["key"]


async def server(api, path: str, body=None, key: str | None = None, method: str = "POST",
                 headers: dict[str, str] | None = None):
    """Calls a server API route with an X-API-Key header."""
    hdrs = {**({"X-API-Key": key} if key else {}), **(headers or {})}
    return await api.call(method, path, body, headers=hdrs)


async def alerts_until(conn, type_: str, count: int, timeout: float = 5.0) -> list[dict]:
    """Reads events of one type until count arrived; fails on anything of that type extra
    within a short settle time afterwards."""
    got = []
    while len(got) < count:
        event = await next_event(conn, timeout)
        if event["type"] == type_:
            got.append(event)
    with pytest.raises(asyncio.TimeoutError):
        while True:
            event = await next_event(conn, 0.3)
            assert event["type"] != type_, f"a duplicate arrived: {event}"
    return got


@pytest.mark.gen_test(timeout=30)
async def test_admin_creates_lists_and_revokes_keys_over_rest_and_keys_are_stored_hashed(api):
    """POST answers the key once; GET lists without it; the database holds only its hash;
    DELETE revokes it; non-admins are refused."""
    admin = await api.admin()
    user = await api.register()
    status, body, _ = await api.call("POST", "/api/v1/admin/api-keys",
                                     {"name": "orders", "scopes": ["notify"]},
                                     token=admin["access_token"])
    assert status == 201, body
    made = body["data"]
    assert set(made) == {"id", "name", "scopes", "key"} and made["scopes"] == ["notify"]
    assert made["key"].startswith("evk_") and len(made["key"]) >= 4 + 43
    rows = await api.ctx.run(lambda: list(ApiKey.select().dicts()))
    assert all(made["key"] not in json.dumps(r, default=str) for r in rows)
    status, body, _ = await api.call("GET", "/api/v1/admin/api-keys", token=admin["access_token"])
    assert status == 200 and [k["name"] for k in body["data"]] == ["orders"]
    assert set(body["data"][0]) == {"id", "name", "scopes", "created_at", "last_used_at"}
    assert made["key"] not in json.dumps(body)
    for method in ("GET", "POST"):
        status, body, _ = await api.call(method, "/api/v1/admin/api-keys", {"name": "x"},
                                         token=user["access_token"])
        assert status == 403, body
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.x", "data": {}, "all": True}, made["key"])
    assert status == 200, body
    status, _, _ = await api.call("DELETE", f"/api/v1/admin/api-keys/{made['id']}",
                                  token=admin["access_token"])
    assert status == 200
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.x", "data": {}, "all": True}, made["key"])
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    status, _, _ = await api.call("DELETE", f"/api/v1/admin/api-keys/{made['id']}",
                                  token=admin["access_token"])
    assert status == 404


@pytest.mark.gen_test(timeout=30)
async def test_missing_unknown_and_bearer_credentials_are_401_and_a_missing_scope_is_403(api):
    """No key, a wrong key and a user's bearer token get 401 invalid_api_key; a key without
    the route's scope 403 insufficient_scope; an API key is no bearer token elsewhere."""
    user = await api.register()
    key = await new_key(api, "presence")
    body = {"type": "app.x", "data": {}, "all": True}
    for headers in ({}, {"X-API-Key": "evk_" + "A" * 43},
                    {"Authorization": f"Bearer {user['access_token']}"},
                    {"Authorization": "Apikey nonsense"}):
        status, parsed, _ = await api.call("POST", "/api/v1/server/notify", body, headers=headers)
        assert (status, parsed["error"]["code"]) == (401, "invalid_api_key"), headers
    status, parsed, _ = await api.call("POST", "/api/v1/server/notify", body,
                                       headers={"Authorization": f"Apikey {key}"})
    assert (status, parsed["error"]["code"]) == (403, "insufficient_scope")
    status, parsed, _ = await api.call("GET", "/api/v1/users/me", headers={"X-API-Key": key})
    assert status == 401
    status, parsed, _ = await api.call("GET", "/api/v1/users/me",
                                       headers={"Authorization": f"Apikey {key}"})
    assert status == 401


@pytest.mark.gen_test(timeout=30)
async def test_notify_reaches_exactly_its_audience_with_the_data_sent_and_an_offset(api):
    """user_id reaches that user's tabs, role admin reaches admins and superadmins, all
    reaches everyone; the event carries the exact data, a timestamp and a feed offset."""
    key = await new_key(api)
    target, other = await api.register(), await api.register()
    admin, superadmin = await api.admin(), await api.admin("superadmin")
    conns = {name: await api.ws(d["access_token"]) for name, d in
             (("target", target), ("other", other), ("admin", admin), ("super", superadmin))}
    data = {"order": 42, "items": ["a", "ü"], "nested": {"ok": True}}
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.order.shipped", "data": data,
                                    "user_id": target["user"]["id"]}, key)
    assert status == 200, body
    assert set(body["data"]) == {"offset", "epoch", "recipients"}
    assert body["data"]["recipients"] == 1
    (event,) = await alerts_until(conns["target"], "app.order.shipped", 1)
    assert event["data"] == data and event["offset"] == body["data"]["offset"]
    assert event["timestamp"].endswith("Z")
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.audit", "data": {"n": 1}, "role": "admin"}, key)
    assert status == 200 and body["data"]["recipients"] == 2
    for name in ("admin", "super"):
        (event,) = await alerts_until(conns[name], "app.audit", 1)
        assert event["data"] == {"n": 1}
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.hello", "data": {}, "all": True}, key)
    assert body["data"]["recipients"] == 4
    for conn in conns.values():
        await alerts_until(conn, "app.hello", 1)
    # Nobody outside the audience got the targeted ones.
    for name in ("other", "admin", "super"):
        with pytest.raises(asyncio.TimeoutError):
            while True:
                assert (await next_event(conns[name], 0.2))["type"] != "app.order.shipped"
    for conn in conns.values():
        conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_notify_missed_while_disconnected_is_recovered_on_resume(api):
    """A notify is logged on the feed: a client resuming from its position gets it."""
    key = await new_key(api)
    user = await api.register()
    conn = await api.ws(user["access_token"])
    conn.close()
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.ping", "data": {"n": 7},
                                    "user_id": user["user"]["id"]}, key)
    assert status == 200
    offset = int(body["data"]["offset"])
    from tornado.websocket import websocket_connect
    resumed = await websocket_connect(
        f"{api.ws_url}/ws?token={user['access_token']}&since={offset - 1}"
        f"&epoch={body['data']['epoch']}")
    welcome = await next_event(resumed)
    assert welcome["data"]["recovered"] is True and welcome["data"]["missed"] == 1
    event = await next_event(resumed)
    assert (event["type"], event["data"], event["offset"]) == ("app.ping", {"n": 7}, str(offset))
    resumed.close()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("body, message", [
    ({"type": "user.created", "data": {}, "all": True}, "type must be app."),
    ({"type": "app.x", "data": [], "all": True}, "data must be a JSON object"),
    ({"type": "app.x", "data": {}}, "audience must be exactly one of user_id, role or all"),
    ({"type": "app.x", "data": {}, "all": True, "role": "admin"}, "audience must be exactly"),
    ({"type": "app.x", "data": {}, "role": "owner"}, "role must be one of"),
    ({"type": "app.x", "data": {}, "user_id": "7"}, "user_id must be a positive whole number"),
    ({"type": "app.x", "data": {}, "all": False}, "all must be true"),
    ({"type": "app.x", "data": {}, "all": True, "extra": 1}, "unknown or read-only"),
])
async def test_bad_notify_bodies_are_400_with_a_precise_message(api, body, message):
    """Each malformed notify names what is wrong; nothing is published."""
    key = await new_key(api)
    status, parsed, _ = await server(api, "/api/v1/server/notify", body, key)
    assert status == 400, parsed
    assert message in parsed["error"]["message"]
    assert parsed["error"]["fields"]  # each bad field named
    assert api.ctx.relay.published == 0


@pytest.mark.gen_test(timeout=30)
async def test_notify_to_an_unknown_user_is_404(api):
    """A user id with no account is refused, not published into the void."""
    key = await new_key(api)
    status, parsed, _ = await server(api, "/api/v1/server/notify",
                                     {"type": "app.x", "data": {}, "user_id": 99999}, key)
    assert status == 404, parsed


@pytest.mark.gen_test(timeout=30)
async def test_publish_stores_and_numbers_an_application_message_in_a_room(api):
    """A server publish reaches the room's subscribers from {"api_key": name}, numbered in
    the room's stream and stored for history; an unknown room is 404 unknown_channel."""
    key = await new_key(api)
    user = await api.register()
    conn = await api.ws(user["access_token"])
    conn.write_message(json.dumps({"id": 1, "type": "subscribe",
                                   "data": {"channel": "room:lobby"}}))
    reply = await next_event(conn)
    assert reply["type"] == "reply", reply
    status, body, _ = await server(api, "/api/v1/server/publish",
                                   {"channel": "room:lobby", "data": {"text": "deploy done"}}, key)
    assert status == 200, body
    answer = body["data"]
    assert answer["channel"] == "room:lobby" and answer["offset"] and answer["epoch"]
    event = await next_event(conn, skip=("user.online", "user.offline", "presence.joined"))
    assert event["type"] == "channel.message" and event["offset"] == answer["offset"]
    assert event["data"]["from"] == {"api_key": "billing"}
    assert event["data"]["body"] == {"text": "deploy done"} and event["data"]["id"] == answer["id"]
    status, body, _ = await server(api, "/api/v1/server/publish",
                                   {"channel": "room:nowhere", "data": {}}, key)
    assert (status, body["error"]["code"]) == (404, "unknown_channel")
    status, body, _ = await server(api, "/api/v1/server/publish",
                                   {"channel": "lobby", "data": {}}, key)
    assert status == 400
    await api.ctx.messages.flush()
    status, body, _ = await server(api, "/api/v1/server/history?channel=room:lobby", key=key,
                                   method="GET")
    assert status == 200, body
    assert [m["id"] for m in body["data"]["messages"]] == [answer["id"]]
    assert body["data"]["messages"][0]["from"] == {"api_key": "billing"}
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_history_pages_oldest_first_after_an_offset(api):
    """since and limit page through a room's messages oldest first, with the epoch."""
    key = await new_key(api)
    sent = []
    for n in range(5):
        status, body, _ = await server(api, "/api/v1/server/publish",
                                       {"channel": "room:lobby", "data": {"n": n}}, key)
        sent.append(body["data"])
    await api.ctx.messages.flush()
    status, body, _ = await server(
        api, f"/api/v1/server/history?channel=room:lobby&since={sent[1]['offset']}&limit=2",
        key=key, method="GET")
    assert status == 200
    assert [m["body"]["n"] for m in body["data"]["messages"]] == [2, 3]
    assert body["data"]["epoch"] == sent[0]["epoch"]
    for query, code in (("channel=room:lobby&since=x", 400), ("channel=room:lobby&limit=0", 400),
                        ("channel=room:none", 404), ("", 400)):
        status, _, _ = await server(api, f"/api/v1/server/history?{query}", key=key,
                                    method="GET")
        assert status == code, query


@pytest.mark.gen_test(timeout=30)
async def test_presence_lists_who_is_in_a_room(api):
    """GET presence answers the members of a room, by user id and name."""
    key = await new_key(api)
    user = await api.register(name="Ada")
    conn = await api.ws(user["access_token"])
    conn.write_message(json.dumps({"id": 1, "type": "subscribe",
                                   "data": {"channel": "room:lobby"}}))
    await next_event(conn)
    status, body, _ = await server(api, "/api/v1/server/presence?channel=room:lobby", key=key,
                                   method="GET")
    assert status == 200
    assert body["data"] == {"channel": "room:lobby",
                            "members": [{"user_id": user["user"]["id"], "name": "Ada"}]}
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_disconnect_closes_every_socket_of_the_user_with_1008(api):
    """Both tabs of the user close with 1008 "disconnected by server"; others stay."""
    key = await new_key(api)
    user, other = await api.register(), await api.register()
    tabs = [await api.ws(user["access_token"]) for _ in range(2)]
    bystander = await api.ws(other["access_token"])
    status, body, _ = await server(api, "/api/v1/server/disconnect",
                                   {"user_id": user["user"]["id"]}, key)
    assert status == 200 and body["data"] == {"disconnected": 2}
    for tab in tabs:
        assert await wait_closed(tab) == (1008, "disconnected by server")
    assert api.ctx.hub.user_connection_count(other["user"]["id"]) == 1
    bystander.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_notify_with_the_same_idempotency_key_is_delivered_once(api):
    """Five retries of one notify answer the first body; the client counts one delivery per
    key; another key is another event; a different body under a used key is 409."""
    key = await new_key(api)
    user = await api.register()
    conn = await api.ws(user["access_token"])
    body = {"type": "app.charge", "data": {"amount": 5}, "user_id": user["user"]["id"]}
    answers = []
    for _ in range(5):
        status, parsed, _ = await server(api, "/api/v1/server/notify", body, key,
                                         headers={"Idempotency-Key": "charge-1"})
        assert status == 200, parsed
        answers.append(parsed["data"])
    assert all(a == answers[0] for a in answers)
    status, parsed, _ = await server(api, "/api/v1/server/notify", body, key,
                                     headers={"Idempotency-Key": "charge-2"})
    assert int(parsed["data"]["offset"]) == int(answers[0]["offset"]) + 1
    got = await alerts_until(conn, "app.charge", 2)
    assert [e["offset"] for e in got] == [answers[0]["offset"], parsed["data"]["offset"]]
    status, parsed, _ = await server(api, "/api/v1/server/notify",
                                     {**body, "data": {"amount": 6}}, key,
                                     headers={"Idempotency-Key": "charge-1"})
    assert (status, parsed["error"]["code"]) == (409, "idempotency_key_reused")
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_retries_of_a_publish_deliver_it_once(api):
    """Ten concurrent publishes with one Idempotency-Key: one message reaches the room and
    every answer names it."""
    key = await new_key(api)
    user = await api.register()
    conn = await api.ws(user["access_token"])
    conn.write_message(json.dumps({"id": 1, "type": "subscribe",
                                   "data": {"channel": "room:lobby"}}))
    await next_event(conn)
    body = {"channel": "room:lobby", "data": {"text": "once"}}
    results = await asyncio.gather(*(server(api, "/api/v1/server/publish", body, key,
                                            headers={"Idempotency-Key": "deploy-7"})
                                     for _ in range(10)))
    ok = [r[1]["data"] for r in results if r[0] == 200]
    assert len(ok) == 10, [r[:2] for r in results]
    assert len({a["id"] for a in ok}) == 1 and len({a["offset"] for a in ok}) == 1
    got = await alerts_until(conn, "channel.message", 1)
    assert got[0]["data"]["id"] == ok[0]["id"]
    rows = await api.ctx.run(lambda: IdempotentRequest.select().count())
    assert rows == 1
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_retry_after_a_lost_answer_is_rebuilt_from_the_outbox(api):
    """If the first request's answer was never stored (its process died), a retry answers
    the offset its event was given, and publishes nothing."""
    key = await new_key(api)
    user = await api.register()
    body = {"type": "app.once", "data": {}, "user_id": user["user"]["id"]}
    status, first, _ = await server(api, "/api/v1/server/notify", body, key,
                                    headers={"Idempotency-Key": "k"})
    await api.ctx.relay.flush()
    await api.ctx.run(lambda: IdempotentRequest.update(answer=None).execute())
    published = api.ctx.relay.published
    status, again, _ = await server(api, "/api/v1/server/notify", body, key,
                                    headers={"Idempotency-Key": "k"})
    assert status == 200 and again["data"]["offset"] == first["data"]["offset"]
    assert api.ctx.relay.published == published


@pytest.mark.gen_test(timeout=30)
async def test_keys_never_reach_the_log(api, caplog):
    """A request's key appears in no log line, not even a refused one."""
    key = await new_key(api)
    caplog.set_level(logging.DEBUG)
    await server(api, "/api/v1/server/notify", {"type": "app.x", "data": {}, "all": True}, key)
    await server(api, "/api/v1/server/notify?api_key=" + key, {"type": "bad"}, key)
    assert key not in caplog.text


@pytest.mark.settings(server_api_rate=5.0)
@pytest.mark.gen_test(timeout=30)
async def test_each_key_has_its_own_request_rate(api):
    """Past --server-api-rate requests per second a key gets 429 rate_limited with
    Retry-After, while another key is still served."""
    first, second = await new_key(api, "history"), await new_key(api, "history")
    path = "/api/v1/server/history?channel=room:lobby"
    answers = [await server(api, path, key=first, method="GET") for _ in range(12)]
    statuses = [status for status, _, _ in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:], statuses
    status, body, headers = next(a for a in answers if a[0] == 429)
    assert body["error"]["code"] == "rate_limited" and int(headers["Retry-After"]) >= 1
    assert (await server(api, path, key=second, method="GET"))[0] == 200


def test_cli_keys_are_listed_without_the_key(tmp_path):
    """create-key's key is shown once; list_keys never includes it (the CLI's data)."""
    from models import db as dbmod
    database = dbmod.open_database("sqlite:///" + str(tmp_path / "k.db"))
    dbmod.db.initialize(database)
    dbmod.create_tables()
    made = blocking(create_key, "cron", "history")
    from services.apikeys import list_keys
    listed = blocking(list_keys)
    assert listed[0]["name"] == "cron" and made["key"] not in json.dumps(listed)
    database.close()



@pytest.fixture
def redis_up() -> str:
    """The machine's Redis (skips without it, fails under CI=true): asked before `api`."""
    from cluster import need_redis

    return need_redis()


@pytest.mark.settings(broker="redis", redis_prefix=f"t{uuid.uuid4().hex[:12]}")
@pytest.mark.gen_test(timeout=30)
async def test_notify_answers_the_epoch_on_a_node_that_has_not_read_the_feed(
        redis_up, api, monkeypatch):
    """With the Redis broker a node learns a stream's epoch when it first reads the stream
    (a socket's handshake does). Nodes sharing a database also share the outbox, so another
    node's relay may number a notify's event before this node's relay reads it: the notify
    then has its offset but this node has not read the feed. It answers the feed's epoch all
    the same (it read 500 before), and a socket opened afterwards is told the same epoch."""
    log = api.ctx.hub.broker.log
    assert FEED not in log.mirror.streams  # nothing on this node has read the feed yet
    numbered = asyncio.get_running_loop().create_future()
    numbered.set_result(1)  # as when another node's relay numbered the row first
    monkeypatch.setattr(api.ctx.relay, "expect", lambda event_id: numbered)
    monkeypatch.setattr(api.ctx.relay, "publish", lambda rows: 0)
    key = await new_key(api)
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.x", "data": {}, "all": True}, key)
    assert status == 200, body
    epoch = body["data"]["epoch"]
    assert epoch and body["data"]["offset"] == "1" and FEED in log.mirror.streams
    admin = await api.admin()
    conn = await websocket_connect(f"{api.ws_url}/ws?token={admin['access_token']}")
    welcome = await next_event(conn)
    assert welcome["type"] == "connection.established", welcome
    assert welcome["data"]["epoch"] == epoch
    conn.close()
