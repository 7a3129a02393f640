"""Permission hooks against a real application on a free port: allow, deny, rewrite, fail
closed (timeout, bad answers), the concurrency bound, keep-alive, and the built-in rules first."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from conftest import TEST_SECRET, next_event
from hookapp import HookApp
from sseutil import open_sse
from test_metrics import value
from test_rooms_ws import Chat, create_room
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from auth.signature import verify
from config import Settings

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

SECRET = "hook-secret-for-the-tests"
# A WebSocket upgrade's headers, to see the refusal's envelope with a plain HTTP client.
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture
def hook_app(io_loop):
    app = HookApp()
    app.start()
    yield app
    io_loop.run_sync(app.stop)


@pytest.fixture
def settings(request, tmp_path, hook_app) -> Settings:
    """Every hook on, pointed at the test's application; @pytest.mark.settings overrides."""
    base = Settings(data_dir=str(tmp_path / "data"), jwt_secret=TEST_SECRET,
                    health_interval=3600, hook_url=hook_app.url,
                    hooks=("connect", "subscribe", "publish"), hook_secret=SECRET)
    marker = request.node.get_closest_marker("settings")
    return replace(base, **marker.kwargs) if marker else base


def _hooks(app: HookApp, hook: str) -> list[dict]:
    return [r.json for r in app.hooks if r.json["hook"] == hook]


async def publish(chat: Chat, data: dict) -> tuple[dict, list[dict]]:
    """Publishes to the lobby; returns the reply (or error) and the messages before it."""
    request_id = await chat.send("publish", {"channel": "room:lobby", "data": data})
    before = []
    while (event := await chat.event())["type"] == "channel.message":
        before.append(event)
    assert event.get("id") == request_id, event
    return event, before


@pytest.mark.gen_test(timeout=30)
async def test_hooks_are_asked_with_the_documented_fields_and_a_valid_signature(api, hook_app):
    """Connect, subscribe and publish each POST the user, channel, data, client id, transport
    and a request id, signed with the hook secret; allow lets each through."""
    user = await api.register(name="Ann")
    chat = await Chat.open(api, user)
    await chat.subscribe()
    reply, messages = await publish(chat, {"text": "hi"})
    assert reply["type"] == "reply", reply
    assert [m["data"]["body"] for m in messages] == [{"text": "hi"}]
    connect, = _hooks(hook_app, "connect")
    subscribe, = _hooks(hook_app, "subscribe")
    published, = _hooks(hook_app, "publish")
    me = {"id": user["user"]["id"], "name": "Ann", "role": "user"}
    assert connect["user"] == me and "channel" not in connect
    assert subscribe["channel"] == "room:lobby" and subscribe["user"] == me
    assert published["channel"] == "room:lobby" and published["data"] == {"text": "hi"}
    for body in (connect, subscribe, published):
        assert body["transport"] == "websocket"
        assert body["client_id"] == connect["client_id"]
    assert len({b["request_id"] for b in (connect, subscribe, published)}) == 3
    for received in hook_app.hooks:
        assert verify(SECRET, received.raw, received.signature)
        assert not verify("another-secret-entirely", received.raw, received.signature)


@pytest.mark.gen_test(timeout=30)
async def test_the_welcome_carries_the_client_id_the_connect_hook_was_asked_about(api, hook_app):
    """The client id in the connect hook is the connection's: later hooks and the welcome
    name the same one."""
    token = (await api.register())["access_token"]
    conn = await websocket_connect(f"{api.ws_url}/ws?token={token}")
    welcome = await next_event(conn)
    assert welcome["data"]["client_id"] == _hooks(hook_app, "connect")[0]["client_id"]
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_denied_subscribe_or_publish_is_forbidden_with_the_application_message(api,
                                                                                     hook_app):
    """deny: the client gets forbidden with the hook's message; nothing is stored or sent."""
    hook_app.answer = lambda body: ({"result": "deny", "message": "banned from the lobby"}
                                    if body["hook"] == "subscribe" else {"result": "allow"})
    chat = await Chat.open(api)
    denied = await chat.request("subscribe", {"channel": "room:lobby"})
    assert denied["type"] == "error"
    assert denied["data"] == {"code": "forbidden", "message": "banned from the lobby"}
    hook_app.answer = lambda body: ({"result": "deny"} if body["hook"] == "publish"
                                    else {"result": "allow"})
    await chat.subscribe()
    denied, messages = await publish(chat, {"text": "x"})
    assert messages == []
    assert denied["data"] == {"code": "forbidden", "message": "denied by the application"}
    await chat.quiet()  # no channel.message reached even the sender
    status, body, _ = await api.call("GET", "/api/v1/rooms/lobby/messages", token=chat.token)
    assert status == 200 and body["data"]["messages"] == []


@pytest.mark.gen_test(timeout=30)
async def test_a_publish_rewritten_by_the_application_is_what_is_delivered_and_stored(api,
                                                                                   hook_app):
    """allow with data: subscribers get the application's data, and history keeps it."""
    def answer(body: dict) -> dict:
        if body["hook"] != "publish":
            return {"result": "allow"}
        return {"result": "allow", "data": {"text": body["data"]["text"].upper(),
                                            "checked": True}}

    hook_app.answer = answer
    sender, reader = await Chat.open(api), await Chat.open(api)
    await sender.subscribe()
    await reader.subscribe()
    await sender.event()  # the reader's presence.joined
    reply, messages = await publish(sender, {"text": "hey"})
    assert reply["type"] == "reply"
    event = await reader.event()
    for message in (messages[0], event):
        assert message["type"] == "channel.message"
        assert message["data"]["body"] == {"text": "HEY", "checked": True}
    await api.ctx.messages.flush()
    status, body, _ = await api.call("GET", "/api/v1/rooms/lobby/messages", token=reader.token)
    assert [m["body"] for m in body["data"]["messages"]] == [{"text": "HEY", "checked": True}]


@pytest.mark.gen_test(timeout=30)
async def test_connect_deny_is_403_and_allow_opens(api, hook_app):
    """The connect hook decides before the upgrade: deny answers 403 with its message."""
    first, second = await api.register(), await api.register()
    banned = first["user"]["id"]
    hook_app.answer = lambda body: ({"result": "deny", "message": "account suspended"}
                                    if body["user"]["id"] == banned else {"result": "allow"})
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(f"{api.ws_url}/ws?token={first['access_token']}")
    assert refused.value.code == 403
    status, body, _ = await api.call("GET", f"/ws?token={first['access_token']}",
                                     headers=UPGRADE)
    assert status == 403
    assert body["error"] == {"code": "forbidden", "message": "account suspended"}
    conn = await api.ws(second["access_token"])  # the other user gets in
    conn.close()
    assert value(api, "events_handshake_failures_total", reason="hook_denied") == 2


@pytest.mark.settings(hook_timeout=0.3)
@pytest.mark.gen_test(timeout=30)
async def test_a_slow_application_fails_closed_and_is_logged_once_a_minute(api, hook_app,
                                                                          caplog):
    """No answer within --hook-timeout: unavailable (503 before the upgrade), one log line
    for several failures of the same cause."""
    token = (await api.register())["access_token"]
    chat = await Chat.open(api)
    hook_app.delay = 1.0
    replies = [await chat.request("subscribe", {"channel": "room:lobby"}) for _ in range(3)]
    status, body, _ = await api.call("GET", f"/ws?token={token}", headers=UPGRADE)
    lines = [r.getMessage() for r in caplog.records if r.name == "hooks"]
    assert len(lines) == 1, lines
    assert "hook failed closed: no answer within 0.3 s" in lines[0]
    assert all(r["data"]["code"] == "unavailable" for r in replies), replies
    assert status == 503 and body["error"]["code"] == "unavailable"
    assert value(api, "events_hook_calls_total", hook="subscribe", result="timeout") == 3


@pytest.mark.gen_test(timeout=30)
async def test_bad_answers_fail_closed(api, hook_app, caplog):
    """A status other than 200, an answer that is not JSON, or one without allow or deny."""
    chat = await Chat.open(api)
    answers = [(500, {"result": "allow"}), (200, "not json"), (200, {"result": "maybe"}),
               (200, ["allow"])]
    for status, answer in answers:
        hook_app.status = status
        text = answer if isinstance(answer, str) else json.dumps(answer)
        hook_app.answer = lambda body, text=text: text
        reply = await chat.request("subscribe", {"channel": "room:lobby"})
        assert reply["data"]["code"] == "unavailable", (status, answer, reply)
    causes = [r.getMessage() for r in caplog.records if r.name == "hooks"]
    assert any("answered HTTP 500" in c for c in causes), causes
    assert any("not JSON" in c for c in causes) and any('"allow" or "deny"' in c for c in causes)


@pytest.mark.settings(hook_concurrency=3, hook_timeout=10.0, rate_limits=False)
@pytest.mark.gen_test(timeout=60)
async def test_at_most_hook_concurrency_requests_are_in_flight(api, hook_app):
    """Twelve subscribes at once: the application never has more than 3 in hand; the rest
    wait for a slot and are all allowed."""
    chats = [await Chat.open(api) for _ in range(12)]
    hook_app.delay = 0.2
    requests = [chat.send("subscribe", {"channel": "room:lobby"}) for chat in chats]
    await asyncio.gather(*requests)
    replies = []
    for chat in chats:
        while (event := await chat.event("presence.joined"))["type"] != "reply":
            pass
        replies.append(event)
    assert all(r["data"]["subscribed"] for r in replies)
    assert hook_app.max_in_flight == 3


@pytest.mark.settings(hook_concurrency=1, hook_timeout=0.5)
@pytest.mark.gen_test(timeout=30)
async def test_calls_waiting_for_a_slot_fail_closed_at_their_timeout(api, hook_app):
    """One slot, a slow application and three calls at once: the others wait for the slot,
    and each call fails closed within its own timeout, the wait included (timeout, or busy
    when it never got the slot)."""
    chats = [await Chat.open(api) for _ in range(3)]
    hook_app.delay = 2.0
    loop = asyncio.get_running_loop()
    began = loop.time()
    for chat in chats:
        await chat.send("subscribe", {"channel": "room:lobby"})
    for chat in chats:
        reply = await chat.event()
        assert reply["type"] == "error" and reply["data"]["code"] == "unavailable", reply
        assert loop.time() - began < 0.5 + 0.3  # each within its timeout, not one after another
    failed = sum(value(api, "events_hook_calls_total", hook="subscribe", result=r)
                 for r in ("timeout", "busy"))
    assert failed == 3


@pytest.mark.settings(hooks=("subscribe",))
@pytest.mark.gen_test(timeout=30)
async def test_hook_requests_share_kept_alive_connections(api, hook_app):
    """Sequential hook calls reuse one connection to the application (no handshake each)."""
    chat = await Chat.open(api)
    for _ in range(5):
        await chat.request("subscribe", {"channel": "room:lobby"}, "presence.joined")
        await chat.request("unsubscribe", {"channel": "room:lobby"}, "presence.joined")
    assert len(hook_app.hooks) == 5
    assert len({r.peer for r in hook_app.hooks}) == 1


@pytest.mark.settings(hooks=("subscribe", "publish"))
@pytest.mark.gen_test(timeout=30)
async def test_the_built_in_rules_come_first(api, hook_app):
    """A private room refuses a non-member without asking the application, and a publish
    over the size limit is refused before the hook too: a hook only narrows the rules."""
    owner, stranger = await Chat.open(api), await Chat.open(api)
    channel = await create_room(api, owner, "secret", private=True)
    reply = await stranger.request("subscribe", {"channel": channel})
    assert reply["data"]["code"] == "forbidden"
    await stranger.subscribe()
    asked = len(hook_app.hooks)
    reply, _ = await publish(stranger, {"text": "x" * 20000})
    assert reply["data"]["code"] == "too_large"
    assert len(hook_app.hooks) == asked == 1  # only the lobby subscribe was asked


@pytest.mark.settings(hooks=())
@pytest.mark.gen_test(timeout=30)
async def test_without_hooks_nothing_is_asked(api, hook_app):
    """--hook-url alone (no --hooks) asks nothing."""
    chat = await Chat.open(api)
    await chat.subscribe()
    reply, _ = await publish(chat, {"n": 1})
    assert reply["type"] == "reply"
    assert hook_app.hooks == []


@pytest.mark.gen_test(timeout=30)
async def test_sse_and_the_rest_publish_ask_the_same_hooks(api, hook_app):
    """/sse asks connect, then subscribe for each room of ?channels=, as transport "sse" with
    the welcome's client id, and a deny is 403 before the stream; a publish over REST asks
    publish as transport "http" without a client id, and is rewritten like a socket's."""
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"], "room:lobby")
    assert sse.status == 200
    await sse.wait(lambda s: s.of_type("recovery"), what="recovery")
    welcome = sse.events[0].data["data"]
    connect, = _hooks(hook_app, "connect")
    subscribe, = _hooks(hook_app, "subscribe")
    assert connect["transport"] == subscribe["transport"] == "sse"
    assert connect["client_id"] == subscribe["client_id"] == welcome["client_id"]
    assert subscribe["channel"] == "room:lobby"
    hook_app.answer = lambda body: ({"result": "allow", "data": {"text": "rewritten"}}
                                    if body["hook"] == "publish" else {"result": "allow"})
    status, _, _ = await api.call("POST", "/api/v1/rooms/lobby/messages",
                                  {"data": {"text": "original"}}, token=user["access_token"])
    assert status == 201
    await sse.wait(lambda s: s.of_type("channel.message"), what="the message")
    assert sse.of_type("channel.message")[0].data["data"]["body"] == {"text": "rewritten"}
    published, = _hooks(hook_app, "publish")
    assert published["transport"] == "http" and published["client_id"] is None
    sse.close()
    hook_app.answer = lambda body: ({"result": "deny", "message": "not this room"}
                                    if body["hook"] == "subscribe" else {"result": "allow"})
    refused = await open_sse(api.base_url, user["access_token"], "room:lobby")
    assert refused.status == 403
    assert json.loads(refused.body)["error"] == {"code": "forbidden", "message": "not this room"}
