"""Several nodes on one Redis and one database act as one server: every v1 event and room
message reaches its audience on every node once, every node sees every stream in the same
order, and controls (role, sessions, deletion, room membership) apply on every node."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest
from cluster import Nodes, Socket, call, login, need_redis, register

ROOM = "room:lobby"


@pytest.fixture
def nodes(tmp_path):
    """Two nodes on the machine's Redis under a prefix of this test's own."""
    cluster = Nodes(tmp_path, need_redis())
    cluster.create_admin()
    cluster.start()
    cluster.start()
    yield cluster
    cluster.stop()


def counts(sock: Socket) -> Counter:
    """Counts a socket's events by type (replies left out)."""
    return Counter(e["type"] for e in sock.events if e["type"] not in ("reply", "error"))


@pytest.mark.gen_test(timeout=120)
async def test_every_v1_event_and_room_message_reaches_each_audience_once(nodes):
    """Events caused on either node reach exactly their audience on both nodes, once each,
    and one event carries the same offset on every node."""
    a, b = (n.port for n in nodes.nodes)
    admin = (await login(a))["access_token"]
    admin_a, admin_b = Socket("adminA"), Socket("adminB")
    await admin_a.open(a, admin)
    await admin_b.open(b, admin)
    u = await register(a, "Uma")
    v = await register(b, "Vic")
    u_a, u_b, v_b = Socket("uA"), Socket("uB"), Socket("vB")
    await u_a.open(a, u["access_token"])
    await u_b.open(b, u["access_token"])
    await v_b.open(b, v["access_token"])
    w = await register(b, "Wes")
    wid = w["user"]["id"]
    status, _ = await call(a, "PATCH", "/api/v1/users/me", {"name": "Uma Two"},
                           u["access_token"])
    assert status == 200
    status, _ = await call(b, "PUT", f"/api/v1/users/{wid}/role", {"role": "admin"}, admin)
    assert status == 200
    status, _ = await call(a, "DELETE", f"/api/v1/users/{wid}", token=admin)
    assert status == 200
    status, body = await call(b, "POST", "/ws/broadcast", {"message": "hello"}, admin)
    assert status == 200, body
    for sock in (u_a, v_b, admin_b):
        reply = await sock.request("subscribe", {"channel": ROOM})
        assert reply["type"] == "reply", reply
    for sock, text in ((u_a, "from A"), (v_b, "from B")):
        reply = await sock.request("publish", {"channel": ROOM, "data": {"text": text}})
        assert reply["type"] == "reply", reply
    await u_a.wait(lambda s: len(s.of_type("channel.message")) >= 2, what="room messages")
    status, _ = await call(b, "POST", "/api/v1/users/me/password", {
        "current_password": "password123", "new_password": "password456"}, u["access_token"])
    assert status == 200
    for sock in (u_a, u_b):
        await sock.wait(lambda s: s.closed is not None, what="close after password change")
        assert sock.closed[0] == 1008, sock.closed
    status, _ = await call(a, "POST", "/ws/broadcast", {"message": "end"}, admin)
    assert status == 200
    for sock in (admin_a, admin_b, v_b):
        await sock.wait(lambda s: any(e["data"].get("message") == "end"
                                      for e in s.of_type("system.alert")), what="end")
    admins = {"user.created": 3, "user.updated": 1, "user.role.changed": 1, "user.deleted": 1,
              "system.alert": 2}
    assert counts(admin_a) == Counter(admins)
    assert counts(admin_b) == Counter({**admins, "channel.message": 2})
    user = {"user.updated": 1, "profile.updated": 1, "system.alert": 1, "password.changed": 1}
    assert counts(u_a) == Counter({**user, "channel.message": 2})
    assert counts(u_b) == Counter(user)
    assert counts(v_b) == Counter({"system.alert": 2, "channel.message": 2})
    # One event, one offset, on both nodes; offsets increase along every socket's feed.
    hello = {s.name: [e["offset"] for e in s.of_type("system.alert")
                      if e["data"]["message"] == "hello"] for s in (admin_a, admin_b, u_a, v_b)}
    assert len({tuple(o) for o in hello.values()}) == 1, hello
    for sock in (admin_a, admin_b, u_a, u_b, v_b):
        feed = [int(e["offset"]) for e in sock.events if "offset" in e and "channel" not in e]
        assert feed == sorted(set(feed)), (sock.name, feed)
    room = {s.name: [(e["offset"], e["data"]["body"]["text"]) for e in
                     s.of_type("channel.message")] for s in (u_a, v_b, admin_b)}
    assert len({tuple(r) for r in room.values()}) == 1, room
    for sock in (admin_a, admin_b, v_b):
        sock.close()


@pytest.mark.gen_test(timeout=180)
async def test_concurrent_publishers_on_two_nodes_give_every_subscriber_one_order(nodes):
    """Room messages and broadcasts published at once on both nodes reach every subscriber
    on both nodes in one identical order, with offsets consecutive and increasing."""
    a, b = (n.port for n in nodes.nodes)
    admin = (await login(a))["access_token"]
    readers = [Socket(f"r{i}") for i in range(4)]
    for i, sock in enumerate(readers):
        await sock.open((a, b)[i % 2], admin)
        assert (await sock.request("subscribe", {"channel": ROOM}))["type"] == "reply"
    writers = []
    for i in range(4):
        user = await register((a, b)[i % 2], f"Writer{i}")
        sock = Socket(f"w{i}")
        await sock.open((a, b)[i % 2], user["access_token"])
        writers.append(sock)
    per_writer, per_node_alerts = 40, 40

    async def write(i: int, sock: Socket) -> None:
        for n in range(per_writer):
            reply = await sock.request("publish", {"channel": ROOM,
                                                   "data": {"w": i, "n": n}})
            assert reply["type"] == "reply", reply

    async def alerts(port: int, tag: str) -> None:
        for n in range(per_node_alerts):
            status, body = await call(port, "POST", "/ws/broadcast",
                                      {"message": f"{tag}{n}"}, admin)
            assert status == 200, body

    await asyncio.gather(*(write(i, s) for i, s in enumerate(writers)),
                         alerts(a, "a"), alerts(b, "b"))
    total_room, total_alerts = 4 * per_writer, 2 * per_node_alerts
    for sock in readers:
        await sock.wait(lambda s: len(s.of_type("channel.message")) >= total_room
                        and len(s.of_type("system.alert")) >= total_alerts, timeout=60,
                        what="every message")
    room_orders, feed_orders = set(), set()
    for sock in readers:
        room = [(int(e["offset"]), e["data"]["body"]["w"], e["data"]["body"]["n"])
                for e in sock.of_type("channel.message")]
        assert len(room) == total_room and len(set(room)) == total_room
        offsets = [o for o, _, _ in room]
        assert offsets == list(range(offsets[0], offsets[0] + total_room)), sock.name
        for w in range(4):  # each writer's own messages keep their order
            assert [n for _, ww, n in room if ww == w] == list(range(per_writer))
        room_orders.add(tuple(room))
        feed = [(int(e["offset"]), e["data"]["message"]) for e in sock.of_type("system.alert")]
        assert len(feed) == total_alerts
        assert [o for o, _ in feed] == sorted({o for o, _ in feed}), sock.name
        feed_orders.add(tuple(feed))
    assert len(room_orders) == 1 and len(feed_orders) == 1


@pytest.mark.gen_test(timeout=180)
async def test_controls_apply_on_every_node_and_a_drained_node_leaves_the_others(nodes):
    """Role change, session revocation, deletion, member removal and room deletion done on
    one node act on the other node's sockets; stopping one node closes only its sockets."""
    a, b = (n.port for n in nodes.nodes)
    admin = (await login(a))["access_token"]
    # Role change on A re-indexes U's socket on B: admin events reach it, then stop.
    u = await register(a, "Una")
    uid = u["user"]["id"]
    u_b = Socket("uB")
    await u_b.open(b, u["access_token"])
    status, _ = await call(a, "PUT", f"/api/v1/users/{uid}/role", {"role": "admin"}, admin)
    assert status == 200
    await u_b.wait(lambda s: s.of_type("user.role.changed"), what="role changed")
    await register(a, "Seen")
    await u_b.wait(lambda s: s.of_type("user.created"), what="admin event after promotion")
    status, _ = await call(b, "PUT", f"/api/v1/users/{uid}/role", {"role": "user"}, admin)
    assert status == 200
    await u_b.wait(lambda s: len(s.of_type("user.role.changed")) == 2, what="demotion")
    await register(a, "Unseen")
    status, _ = await call(a, "POST", "/ws/broadcast", {"message": "mark"}, admin)
    await u_b.wait(lambda s: s.of_type("system.alert"), what="mark")
    assert len(u_b.of_type("user.created")) == 1  # none after the demotion
    # Session revocation (logout on A) closes that session's socket on B.
    session = await login(a, u["user"]["email"], "password123")
    s_b = Socket("sessionB")
    await s_b.open(b, session["access_token"])
    status, _ = await call(a, "POST", "/api/v1/auth/logout", {}, session["access_token"])
    assert status == 200
    await s_b.wait(lambda s: s.closed is not None, what="revoked session closed")
    assert s_b.closed == (1008, "session revoked")
    assert u_b.closed is None  # the user's other session stays
    # Private room: the owner on A removes a member whose socket is on B, then deletes it.
    owner, member, other = (await register(a, "Owner"), await register(b, "Member"),
                            await register(b, "Other"))
    status, _ = await call(a, "POST", "/api/v1/rooms", {"name": "club", "private": True},
                           owner["access_token"])
    assert status == 201
    for user in (member, other):
        status, _ = await call(a, "POST", "/api/v1/rooms/club/members",
                               {"user_id": user["user"]["id"]}, owner["access_token"])
        assert status == 201
    m_b, o_b = Socket("memberB"), Socket("otherB")
    for sock, user in ((m_b, member), (o_b, other)):
        await sock.open(b, user["access_token"])
        assert (await sock.request("subscribe", {"channel": "room:club"}))["type"] == "reply"
    status, _ = await call(a, "DELETE", f"/api/v1/rooms/club/members/{member['user']['id']}",
                           token=owner["access_token"])
    assert status == 200
    await m_b.wait(lambda s: s.of_type("channel.unsubscribed"), what="removed")
    assert m_b.of_type("channel.unsubscribed")[0]["data"]["reason"] == "removed from room"
    status, _ = await call(a, "DELETE", "/api/v1/rooms/club", token=owner["access_token"])
    assert status == 200
    await o_b.wait(lambda s: s.of_type("channel.unsubscribed"), what="room deleted")
    assert o_b.of_type("channel.unsubscribed")[0]["data"]["reason"] == "room deleted"
    # Deleting a user on B closes their socket on A.
    gone = await register(b, "Gone")
    g_a = Socket("goneA")
    await g_a.open(a, gone["access_token"])
    status, _ = await call(b, "DELETE", f"/api/v1/users/{gone['user']['id']}", token=admin)
    assert status == 200
    await g_a.wait(lambda s: s.closed is not None, what="deleted user closed")
    assert g_a.closed == (1008, "account deleted")
    # Draining node B closes its own sockets only.
    keep = Socket("keepA")
    await keep.open(a, admin)
    nodes.nodes[1].proc.send_signal(signal.SIGTERM)
    await u_b.wait(lambda s: s.closed is not None, what="node B drained")
    assert u_b.closed[0] == 1001
    nodes.nodes[1].proc.wait(15)
    status, _ = await call(a, "POST", "/ws/broadcast", {"message": "after"}, admin)
    assert status == 200
    await keep.wait(lambda s: any(e["data"]["message"] == "after"
                                  for e in s.of_type("system.alert")), what="after drain")
    assert keep.closed is None


@pytest.mark.gen_test(timeout=120)
async def test_a_node_started_later_recovers_from_the_redis_log(tmp_path):
    """A node that never saw a stream's events replays them from Redis to a resuming client
    (feed and room, exactly the missed ones, then live ones); a position older than
    --history-size answers recovered false."""
    cluster = Nodes(tmp_path, need_redis(), "--history-size=30")
    try:
        cluster.create_admin()
        a = cluster.start().port
        admin = (await login(a))["access_token"]
        first = Socket("first")
        await first.open(a, admin)
        assert (await first.request("subscribe", {"channel": ROOM}))["type"] == "reply"
        for n in range(10):
            status, _ = await call(a, "POST", "/ws/broadcast", {"message": str(n)}, admin)
            assert status == 200
            reply = await first.request("publish", {"channel": ROOM, "data": {"n": n}})
            assert reply["type"] == "reply"
        await first.wait(lambda s: len(s.of_type("system.alert")) == 10
                         and len(s.of_type("channel.message")) == 10, what="ten of each")
        feed_at = first.of_type("system.alert")[3]["offset"]
        room_at = first.of_type("channel.message")[3]["offset"]
        epoch, room_epoch = first.welcome["epoch"], first.events[0]["data"]["epoch"]
        b = cluster.start().port  # it has seen none of them
        again = Socket("again")
        welcome = await again.open(b, admin, f"&since={feed_at}&epoch={epoch}")
        assert welcome["recovered"] is True and welcome["missed"] == 6, welcome
        reply = await again.request("subscribe", {"channel": ROOM, "since": room_at,
                                                  "epoch": room_epoch})
        assert reply["data"]["recovered"] is True and reply["data"]["missed"] == 6, reply
        status, _ = await call(a, "POST", "/ws/broadcast", {"message": "10"}, admin)
        await again.wait(lambda s: len(s.of_type("system.alert")) == 7, what="live alert")
        assert [e["data"]["message"] for e in again.of_type("system.alert")] == [
            str(n) for n in range(4, 11)]
        assert [e["data"]["body"]["n"] for e in again.of_type("channel.message")] == list(
            range(4, 10))
        for n in range(40):  # past --history-size: the old position is gone
            await call(a, "POST", "/ws/broadcast", {"message": f"x{n}"}, admin)
        old = Socket("old")
        c = cluster.start().port
        welcome = await old.open(c, admin, f"&since={feed_at}&epoch={epoch}")
        assert welcome["recovered"] is False and welcome["missed"] == 0, welcome
    finally:
        cluster.stop()
