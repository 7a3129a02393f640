"""Webhooks against a real application on a free port: what is sent, once per success with
stable ids, in order per channel and per user, through an outage and failing answers,
dropped after --webhook-max-age, and claimed by one relay at a time on both databases."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import replace

import pytest
from conftest import TEST_SECRET
from hookapp import HookApp
from sseutil import open_sse
from test_metrics import value
from test_openapi import conforms, response_schema
from test_rooms_ws import Chat

from auth.signature import verify
from config import FEED_WEBHOOK_EVENTS, Settings
from models.webhook import Webhook
from services.hookclient import HookClient
from services.webhookrelay import WebhookRelay
from services.webhooks import insert_rows, webhook_row

SECRET = "webhook-secret-for-the-tests"


@pytest.fixture
def hook_app(io_loop):
    app = HookApp()
    app.start()
    yield app
    io_loop.run_sync(app.stop)


@pytest.fixture
def settings(request, tmp_path, hook_app) -> Settings:
    """Webhooks to the test's application, retried within a second; @pytest.mark.settings
    overrides."""
    base = Settings(data_dir=str(tmp_path / "data"), jwt_secret=TEST_SECRET,
                    health_interval=3600, webhook_url=hook_app.webhook_url,
                    hook_secret=SECRET, webhook_retry_cap=1.0, rate_limits=False)
    marker = request.node.get_closest_marker("settings")
    return replace(base, **marker.kwargs) if marker else base


def assert_once_each(app: HookApp) -> None:
    """No webhook id was answered 2xx twice, and a failed one came again with its id."""
    counts = Counter(body["id"] for body in app.delivered())
    assert counts and max(counts.values()) == 1, counts.most_common(3)
    assert {r.json["id"] for r in app.webhooks} == set(counts)  # every attempt succeeded later


async def publish_many(chat: Chat, count: int, tag: str) -> None:
    """Publishes count messages {tag, n} to the lobby without waiting for replies."""
    for n in range(count):
        await chat.send("publish", {"channel": "room:lobby", "data": {"tag": tag, "n": n}})


def offsets(app: HookApp) -> list[int]:
    """The channel.message offsets in the order the application accepted them."""
    return [int(b["data"]["offset"]) for b in app.delivered("channel.message")]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_socket_and_room_events_are_delivered_once_with_stable_ids(api, hook_app):
    """A connection's life (opened, joined, three messages, closed, left) reaches the
    application once each, signed, with the documented fields; the table empties."""
    user = await api.register(name="Ann")
    chat = await Chat.open(api, user)
    await chat.subscribe()
    await publish_many(chat, 3, "a")
    for _ in range(6):  # three replies and three messages
        await chat.event()
    chat.conn.close(1000, "bye")
    await hook_app.wait(lambda: len(hook_app.delivered()) == 7, timeout=20)
    assert_once_each(hook_app)
    bodies = {b["type"]: b for b in hook_app.delivered()}
    uid, node = user["user"]["id"], api.ctx.broker.node_id
    opened, closed = bodies["connection.opened"], bodies["connection.closed"]
    assert opened["data"] == {"client_id": opened["data"]["client_id"], "user_id": uid,
                              "transport": "websocket"}
    assert closed["data"]["client_id"] == opened["data"]["client_id"]
    assert closed["data"]["code"] == 1000 and closed["data"]["reason"] == "bye"
    assert closed["data"]["duration_s"] >= 0
    assert bodies["presence.joined"]["data"] == {"channel": "room:lobby", "user_id": uid,
                                                "name": "Ann"}
    assert bodies["presence.left"]["data"] == bodies["presence.joined"]["data"]
    messages = hook_app.delivered("channel.message")
    assert [m["data"]["body"] for m in messages] == [{"tag": "a", "n": n} for n in range(3)]
    assert all(m["id"] == m["data"]["id"] and m["data"]["channel"] == "room:lobby"
               for m in messages)
    assert offsets(hook_app) == sorted(offsets(hook_app))
    for received in hook_app.webhooks:
        assert set(received.json) == {"id", "type", "data", "timestamp", "node"}
        assert received.json["node"] == node
        assert verify(SECRET, received.raw, received.signature)
    user_events = [b["type"] for b in hook_app.delivered() if b["type"].startswith("connection")]
    assert user_events == ["connection.opened", "connection.closed"]  # in order per user
    await emptied(api.ctx)
    assert value(api, "events_webhook_deliveries_total", outcome="delivered") == 7
    admin = await api.admin()
    status, stats, _ = await api.call("GET", "/ws/stats", token=admin["access_token"])
    assert stats["webhooks"]["enabled"] is True and stats["webhooks"]["delivered"] >= 7
    conforms(stats, response_schema("/ws/stats", "get", 200))  # the OpenAPI document's


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.settings(webhook_events=("connection.opened", "connection.closed"))
@pytest.mark.gen_test(timeout=30)
async def test_an_sse_stream_is_reported_opened_and_closed_with_its_transport(api, hook_app):
    """The same connection webhooks for /sse, with "transport": "sse" and the welcome's id."""
    user = await api.register()
    sse = await open_sse(api.base_url, user["access_token"])
    await sse.wait(lambda s: s.of_type("recovery"), what="recovery")
    client_id = sse.events[0].data["data"]["client_id"]
    sse.close()
    await hook_app.wait(lambda: len(hook_app.delivered()) == 2)
    opened, closed = hook_app.delivered()
    assert opened["type"] == "connection.opened" and closed["type"] == "connection.closed"
    assert opened["data"] == {"client_id": client_id, "user_id": user["user"]["id"],
                              "transport": "sse"}
    assert closed["data"]["client_id"] == client_id and closed["data"]["transport"] == "sse"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_an_application_outage_loses_nothing_and_delivers_each_event_once(api, hook_app):
    """The application is down while two users publish 40 messages; it comes back and gets
    every event once, each channel's messages in offset order."""
    await hook_app.stop()
    ann, bob = await Chat.open(api), await Chat.open(api)
    await ann.subscribe()
    await bob.subscribe()
    await asyncio.gather(publish_many(ann, 20, "ann"), publish_many(bob, 20, "bob"))
    relay = api.ctx.webhooks.relay
    await wait_until(lambda: relay.failed >= 3 and relay.queued >= 44, timeout=20)
    await asyncio.sleep(5.0)  # the outage goes on: attempts keep failing, backing off
    hook_app.start()
    await hook_app.wait(lambda: len(hook_app.delivered("channel.message")) == 40, timeout=30)
    await hook_app.wait(lambda: relay.queued == 0 and not relay._chains, timeout=10)  # noqa: SLF001
    assert_once_each(hook_app)
    assert offsets(hook_app) == list(range(1, 41))
    for tag in ("ann", "bob"):
        bodies = [m["data"]["body"] for m in hook_app.delivered("channel.message")]
        assert [b["n"] for b in bodies if b["tag"] == tag] == list(range(20))
    assert len(hook_app.delivered("connection.opened")) == 2
    assert len(hook_app.delivered("presence.joined")) == 2


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_failing_answers_are_retried_in_order_per_channel_and_user(api, hook_app):
    """The application answers 503 to a third of the requests at random: each event is still
    accepted once, a channel's messages in offset order, a user's events in order."""
    rng = random.Random(7)
    hook_app.status = lambda body: 503 if rng.random() < 0.33 else 200
    chats = [await Chat.open(api) for _ in range(3)]
    for chat in chats:
        await chat.subscribe(joins=False)
    await asyncio.gather(*(publish_many(c, 10, str(i)) for i, c in enumerate(chats)))
    for chat in chats:
        chat.conn.close()
    want = {"channel.message": 30, "connection.opened": 3, "connection.closed": 3}
    await hook_app.wait(lambda: all(len(hook_app.delivered(t)) == n for t, n in want.items()),
                        timeout=60)
    assert_once_each(hook_app)
    assert any(not r.ok for r in hook_app.webhooks)  # some attempts did fail
    assert offsets(hook_app) == list(range(1, 31))
    for chat in chats:
        mine = [b["type"] for b in hook_app.delivered()
                if b["type"].startswith("connection.") and b["data"]["user_id"] == chat.id]
        assert mine == ["connection.opened", "connection.closed"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.settings(webhook_max_age=1.0, webhook_events=("connection.opened",))
@pytest.mark.gen_test(timeout=30)
async def test_a_webhook_failing_past_max_age_is_dropped_logged_and_counted(api, hook_app,
                                                                           caplog):
    """An application answering 500 forever: the event is dropped after --webhook-max-age,
    with a log line and the dropped count; the table is left empty."""
    hook_app.status = 500
    conn = await api.ws((await api.register())["access_token"])
    relay = api.ctx.webhooks.relay
    await wait_until(lambda: relay.dropped == 1, timeout=15)
    assert any(r.name == "webhooks" and "dropping webhook" in r.getMessage()
               for r in caplog.records)
    await emptied(api.ctx)
    assert value(api, "events_webhook_deliveries_total", outcome="dropped") == 1
    assert len(hook_app.webhooks) >= 2  # retried before it was dropped
    conn.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.settings(webhook_events=FEED_WEBHOOK_EVENTS)  # what --webhook-events=user.* gives
@pytest.mark.gen_test(timeout=30)
async def test_user_feed_events_are_sent_with_their_outbox_event_ids(api, hook_app):
    """user.* webhooks are recorded with the outbox row: the same event id, in order."""
    admin = await api.admin()
    user = await api.register(name="Cy")
    uid = user["user"]["id"]
    status, _, _ = await api.call("PATCH", "/api/v1/users/me", {"name": "Cyril"},
                                  user["access_token"])
    assert status == 200
    status, _, _ = await api.call("PUT", f"/api/v1/users/{uid}/role", {"role": "admin"},
                                  admin["access_token"])
    assert status == 200
    await hook_app.wait(lambda: len([b for b in hook_app.delivered()
                                     if b["data"].get("user_id") == uid]) == 3)
    mine = [b for b in hook_app.delivered() if b["data"].get("user_id") == uid]
    assert [b["type"] for b in mine] == ["user.created", "user.updated", "user.role.changed"]
    from models.outbox import OutboxEvent
    ids = await api.ctx.run(lambda: {o.event_id for o in OutboxEvent.select()})
    assert {b["id"] for b in mine} <= ids
    assert_once_each(hook_app)


@pytest.mark.settings(webhook_events=())
@pytest.mark.gen_test(timeout=60)
async def test_two_relays_on_one_database_deliver_each_row_once_in_order(ctx, hook_app):
    """Two nodes' relays claim from one table at once (each database's locking): every row
    is accepted once, and each key's rows in the order they were recorded."""
    async def record(numbers: range) -> None:
        rows = [webhook_row("test.event", f"k{k}", {"k": k, "n": n}, "t", "test")
                for n in numbers for k in range(40)]
        await ctx.run(insert_rows, rows)

    hook_app.delay = 0.005
    client = HookClient(SECRET, 32)
    relays = [WebhookRelay(ctx.run, client, hook_app.webhook_url, f"node-{i}", 1.0, 60.0)
              for i in range(2)]
    try:
        await record(range(5))
        for relay in relays:
            await relay.start()
        await record(range(5, 10))  # more arrive while they deliver
        for relay in relays:
            relay.kick()
        await hook_app.wait(lambda: len(hook_app.delivered()) == 400, timeout=45)
    finally:
        for relay in relays:
            await relay.close()
        await client.close()
    assert_once_each(hook_app)
    assert all(relay.delivered > 0 for relay in relays)
    for k in range(40):
        ns = [b["data"]["n"] for b in hook_app.delivered() if b["data"]["k"] == k]
        assert ns == list(range(10))
    await emptied(ctx)


async def emptied(ctx, timeout: float = 10.0) -> None:
    """Waits until every webhook row is gone (delivered rows are deleted after the answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await ctx.run(lambda: Webhook.select().count()):
        assert loop.time() < deadline, "webhook rows are left"
        await asyncio.sleep(0.05)


async def wait_until(condition, timeout: float) -> None:
    """Polls condition every 20 ms until it holds; fails after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_the_options_parse_as_documented():
    """user.* names the four user events; --hooks needs --hook-url; unknown names stop it."""
    from config import parse_args

    _, settings, _ = parse_args(["--webhook-url=http://app/wh",
                                 "--webhook-events=connection.opened,user.*",
                                 "--hook-url=http://app/hook", "--hooks=publish,connect"], {})
    assert settings.webhook_events == ("connection.opened", *FEED_WEBHOOK_EVENTS)
    assert settings.hooks == ("connect", "publish")
    assert settings.webhook_retry_cap == 30.0 and settings.webhook_max_age == 86400.0
    for argv in (["--hooks=subscribe"], ["--hook-url=http://a", "--hooks=join"],
                 ["--webhook-events=user.login"], ["--hook-secret=short"]):
        with pytest.raises(SystemExit) as stopped:
            parse_args(argv, {})
        assert stopped.value.code == 2


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_the_dashboard_shows_the_webhook_queue(api, hook_app):
    """The Webhooks card shows the dashboard's own connection waiting while the application
    refuses, then delivered once it accepts."""
    from test_browser import chromium, dashboard_login, expect

    admin = await api.admin()
    hook_app.status = 503
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#webhooks-panel")).to_be_visible()
        await expect(page.locator("#webhooks-queued")).to_have_text("1")
        await expect(page.locator("#webhooks-failed")).not_to_have_text("0")
        await expect(page.locator("#webhooks-oldest")).to_have_text(re.compile(r"^\d+(\.\d)? s$"))
        hook_app.status = 200
        await expect(page.locator("#webhooks-delivered")).to_have_text("1", timeout=15_000)
        await expect(page.locator("#webhooks-queued")).to_have_text("0")
        assert watched.errors == []
