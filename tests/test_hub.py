"""Unit tests of the hub: registry indexes, targeted fan-out, slow consumers and stats."""

from __future__ import annotations

import json
import struct
import uuid
import weakref

import pytest
from fakeclock import FakeClock

from app import make_hub
from hub import feed
from hub.broker import MemoryBroker
from hub.client import GONE, Client, new_client_id
from hub.disconnect import ACCOUNT_DELETED, SESSION_REVOKED, SHUTTING_DOWN
from hub.events import Event, EventType
from hub.hub import MAX_QUEUED_MESSAGES, MAX_UNSENT_BYTES, Hub
from hub.messages import (
    ADMINS,
    ALL,
    CloseSession,
    CloseUser,
    Publication,
    SetRole,
    ToChannel,
    Unsubscribe,
    to_role,
    to_user,
)
from hub.notify import HubNotifier
from hub.presence import MemoryPresence
from hub.typing import Typing


def new_hub(**limits: int) -> Hub:
    """Returns a hub wired to a fresh MemoryBroker, as the application context wires it.

    Its presence announcements (user.online to admins) are muted: these tests count the
    fan-out of their own events; tests/test_presence.py covers the announcements.
    """
    clock = FakeClock()
    hub = make_hub(MemoryBroker(), presence=MemoryPresence(scheduler=clock),
                   typing=Typing(lambda *a: None, scheduler=clock, clock=clock), **limits)
    hub.presence.attach(lambda *args: None)
    return hub


class Sent:
    """A frame a fake connection was given, with its JSON text decoded."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        length, start = frame[1] & 0x7F, 2
        if length == 126:
            length, start = struct.unpack_from("!H", frame, 2)[0], 4
        elif length == 127:
            length, start = struct.unpack_from("!Q", frame, 2)[0], 10
        self.payload = frame[start:start + length]
        self.text = self.payload.decode("utf-8")
        self.type = json.loads(self.text)["type"]


class FakeConn:
    """A connection that records what the hub does to it."""

    def __init__(self, backlog: tuple[int, int] = (0, 0), fail: bool = False) -> None:
        self.sent: list[Sent] = []
        self.closed: list[tuple[int | None, str | None]] = []
        self.queue = backlog
        self.fail = fail

    def write_frame(self, frame: bytes) -> bool:
        if self.fail:
            raise OSError("broken pipe")
        self.sent.append(Sent(frame))
        return self.queue == (0, 0)

    def write_held(self, last: bool = False) -> bool:
        return True

    def backlog(self) -> tuple[int, int]:
        return self.queue

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed.append((code, reason))

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.sent]


def connect(hub: Hub, user_id: int, role: str = "user", session: str = "", version: int = 0,
            **conn_kwargs) -> tuple[Client, FakeConn]:
    """Registers a fake connection and returns its client record and the fake."""
    conn = FakeConn(**conn_kwargs)
    client = Client(conn, user_id, role, session or f"s{user_id}", version)
    hub.register(client)
    return client, conn


def alert(text: str = "hello") -> Event:
    return Event(EventType.SYSTEM_ALERT, {"message": text})


def test_register_indexes_client_by_id_user_role_and_session():
    """Registering puts a connection into the client, user, role and session indexes."""
    hub = new_hub()
    a, _ = connect(hub, 1, "user", "s-a")
    b, _ = connect(hub, 1, "user", "s-b")
    c, _ = connect(hub, 2, "admin", "s-c")
    assert set(hub.clients) == {a.id, b.id, c.id}
    assert set(hub.by_user[1]) == {a.id, b.id} and set(hub.by_user[2]) == {c.id}
    assert set(hub.by_role["user"]) == {a.id, b.id} and set(hub.by_role["admin"]) == {c.id}
    assert set(hub.by_session["s-a"]) == {a.id} and set(hub.by_session["s-c"]) == {c.id}
    assert hub.user_connection_count(1) == 2 and hub.user_connection_count(3) == 0


def test_unregister_removes_client_from_every_index_and_empty_buckets():
    """Unregistering removes the connection everywhere and deletes buckets left empty."""
    hub = new_hub()
    a, _ = connect(hub, 1, "user", "s-a")
    b, _ = connect(hub, 1, "user", "s-b")
    assert hub.unregister(a) is True
    assert set(hub.clients) == {b.id} and set(hub.by_user[1]) == {b.id}
    assert "s-a" not in hub.by_session
    assert hub.unregister(b) is True
    assert hub.clients == {} and hub.by_user == {} and hub.by_role == {} and hub.by_session == {}


def test_unregister_twice_returns_false():
    """Unregistering a connection that is not registered is a harmless no-op."""
    hub = new_hub()
    a, _ = connect(hub, 1)
    assert hub.unregister(a) is True
    assert hub.unregister(a) is False


def test_publish_to_all_reaches_every_connection_once():
    """A publish to ALL reaches every registered connection exactly once."""
    hub = new_hub()
    fakes = [connect(hub, uid, role)[1] for uid, role in
             [(1, "user"), (1, "user"), (2, "admin"), (3, "superadmin")]]
    assert hub.publish(alert(), ALL) == 4
    assert [len(f.sent) for f in fakes] == [1, 1, 1, 1]


def test_publish_to_user_reaches_only_that_users_tabs():
    """A publish to one user reaches each of that user's connections and nobody else."""
    hub = new_hub()
    tabs = [connect(hub, 7)[1] for _ in range(3)]
    others = [connect(hub, 8)[1], connect(hub, 9, "admin")[1]]
    assert hub.publish(alert(), to_user(7)) == 3
    assert [len(t.sent) for t in tabs] == [1, 1, 1]
    assert [len(o.sent) for o in others] == [0, 0]


def test_publish_to_role_reaches_only_that_role():
    """A publish to a role reaches the connections holding that role only."""
    hub = new_hub()
    admin = connect(hub, 1, "admin")[1]
    user = connect(hub, 2, "user")[1]
    superadmin = connect(hub, 3, "superadmin")[1]
    assert hub.publish(alert(), to_role("admin")) == 1
    assert (len(admin.sent), len(user.sent), len(superadmin.sent)) == (1, 0, 0)


def test_publish_to_admins_reaches_admin_and_superadmin_not_users():
    """ADMINS covers both admin roles and no plain user."""
    hub = new_hub()
    admin = connect(hub, 1, "admin")[1]
    superadmin = connect(hub, 2, "superadmin")[1]
    user = connect(hub, 3, "user")[1]
    assert hub.publish(alert(), ADMINS) == 2
    assert (len(admin.sent), len(superadmin.sent), len(user.sent)) == (1, 1, 0)


def test_publish_to_user_plus_admins_deduplicates_an_admin_user():
    """An admin who is also the target user gets one copy, not two."""
    hub = new_hub()
    admin_self = connect(hub, 1, "admin")[1]
    other_admin = connect(hub, 2, "admin")[1]
    bystander = connect(hub, 3, "user")[1]
    assert hub.publish(alert(), to_user(1) + ADMINS) == 2
    assert (len(admin_self.sent), len(other_admin.sent), len(bystander.sent)) == (1, 1, 0)


def test_seed_broadcast_helpers_target_all_user_and_role():
    """broadcast_to_all, broadcast_to_user and broadcast_to_role reach the seed's audiences."""
    hub = new_hub()
    tabs = [connect(hub, 1)[1] for _ in range(2)]
    admin = connect(hub, 2, "admin")[1]
    assert hub.broadcast_to_all(EventType.SYSTEM_ALERT, {"message": "all"}) == 3
    assert hub.broadcast_to_user(1, EventType.PROFILE_UPDATED, {"user_id": 1}) == 2
    assert hub.broadcast_to_role("admin", EventType.USER_CREATED, {"user_id": 3}) == 1
    assert [t.types for t in tabs] == [["system.alert", "profile.updated"]] * 2
    assert admin.types == ["system.alert", "user.created"]
    assert json.loads(admin.sent[1].text)["data"] == {"user_id": 3}


def test_publish_to_nobody_sends_nothing():
    """A publish to a user or role with no connections sends nothing and returns 0."""
    hub = new_hub()
    fake = connect(hub, 1)[1]
    assert hub.publish(alert(), to_user(99)) == 0
    assert hub.publish(alert(), to_role("admin")) == 0
    assert fake.sent == []


def test_unknown_target_kind_raises():
    """A target kind the hub does not know is a programming error, not a silent no-op."""
    hub = new_hub()
    with pytest.raises(TypeError):
        hub.publish(alert(), ("channel",))  # type: ignore[arg-type]


def test_event_is_encoded_once_and_same_bytes_reach_every_recipient(monkeypatch):
    """One publish serialises once; every recipient gets the identical frame bytes."""
    hub = new_hub()
    fakes = [connect(hub, uid, "admin" if uid % 2 else "user")[1] for uid in range(1, 7)]
    calls = []
    original = Event.encode

    def counting_encode(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(Event, "encode", counting_encode)
    hub.publish(alert("once"), ALL)
    assert len(calls) == 1
    first = fakes[0].sent[0]
    assert all(f.sent[0].frame is first.frame for f in fakes)  # the same bytes, made once
    assert json.loads(first.text)["data"] == {"message": "once"}
    assert first.frame.endswith(first.payload)


def test_encoded_event_has_the_wire_shape():
    """An encoded event is {"type","data","timestamp"} JSON with an RFC 3339 UTC timestamp."""
    encoded = Event(EventType.USER_CREATED, {"user_id": 1, "name": "Zoë"}).encode()
    message = json.loads(encoded.payload)
    assert set(message) == {"type", "data", "timestamp"}
    assert message["type"] == "user.created" and encoded.type == "user.created"
    assert message["data"]["name"] == "Zoë"
    assert message["timestamp"].endswith("Z") and "T" in message["timestamp"]


def test_send_to_one_user_costs_the_same_with_10_or_10000_bystanders():
    """A send to one user calls send() only on that user's tabs, however many others connect."""
    for bystanders in (10, 10_000):
        hub = new_hub()
        others = [connect(hub, 1000 + i, "admin" if i % 3 == 0 else "user")[1]
                  for i in range(bystanders)]
        tabs = [connect(hub, 1)[1] for _ in range(3)]
        assert hub.publish(alert(), to_user(1)) == 3
        assert sum(len(t.sent) for t in tabs) == 3
        assert sum(len(o.sent) for o in others) == 0, bystanders


def test_set_role_reindexes_all_of_a_users_connections():
    """Control set_role moves every tab of the user to the new role at once."""
    hub = new_hub()
    tabs = [connect(hub, 5, "admin") for _ in range(2)]
    connect(hub, 6, "admin")
    assert hub.control(SetRole(5, "user")) == 2
    assert all(client.role == "user" for client, _ in tabs)
    assert set(hub.by_role["user"]) == {c.id for c, _ in tabs}
    assert len(hub.by_role["admin"]) == 1
    hub.publish(alert(), ADMINS)
    assert all(conn.sent == [] for _, conn in tabs)


def test_set_role_of_last_admin_removes_the_empty_role_bucket():
    """Re-indexing leaves no empty role bucket behind, so stats show no zero counts."""
    hub = new_hub()
    connect(hub, 5, "admin")
    hub.control(SetRole(5, "user"))
    assert "admin" not in hub.by_role
    assert hub.get_stats()["by_role"] == {"user": 1}


def test_close_user_closes_and_unregisters_every_tab():
    """close_user closes each of the user's connections with the code and reason given."""
    hub = new_hub()
    tabs = [connect(hub, 5) for _ in range(2)]
    other = connect(hub, 6)
    assert hub.control(CloseUser(5, ACCOUNT_DELETED)) == 2
    assert all(conn.closed == [(1008, "account deleted")] for _, conn in tabs)
    assert other[1].closed == []
    assert set(hub.clients) == {other[0].id} and 5 not in hub.by_user


def test_close_user_below_version_keeps_newer_tokens():
    """close_user with below_version closes only connections opened with older tokens."""
    hub = new_hub()
    old, old_conn = connect(hub, 5, session="old", version=0)
    new, new_conn = connect(hub, 5, session="new", version=1)
    control = CloseUser(5, SESSION_REVOKED, below_version=1)
    assert hub.control(control) == 1
    assert old_conn.closed == [(1008, "session revoked")]
    assert new_conn.closed == [] and set(hub.clients) == {new.id}


def test_close_session_closes_only_that_sessions_connections():
    """close_session closes the connections of one session and leaves the user's others open."""
    hub = new_hub()
    a, a_conn = connect(hub, 5, session="s1")
    a2, a2_conn = connect(hub, 5, session="s1")
    b, b_conn = connect(hub, 5, session="s2")
    assert hub.control(CloseSession("s1", SESSION_REVOKED)) == 2
    assert a_conn.closed == a2_conn.closed == [(1008, "session revoked")]
    assert b_conn.closed == [] and set(hub.clients) == {b.id}


def test_update_session_moves_client_to_new_session_index():
    """An in-band refresh moves the connection to the new session and token version."""
    hub = new_hub()
    client, conn = connect(hub, 5, session="s1", version=0)
    hub.update_session(client, "s2", 1)
    assert "s1" not in hub.by_session and set(hub.by_session["s2"]) == {client.id}
    hub.control(CloseUser(5, SESSION_REVOKED, below_version=1))
    assert conn.closed == []
    hub.control(CloseSession("s2", SESSION_REVOKED))
    assert conn.closed == [(1008, "session revoked")]


def test_unknown_control_op_raises():
    """An unknown registry operation is rejected loudly."""
    with pytest.raises(TypeError):
        new_hub().control("explode")  # type: ignore[arg-type]


@pytest.mark.parametrize("backlog", [(MAX_QUEUED_MESSAGES + 1, 10), (3, MAX_UNSENT_BYTES + 1)])
def test_slow_consumer_is_dropped_while_others_get_everything(backlog):
    """Past 256 queued messages or 1 MiB unsent a connection closes 1013; others are unaffected."""
    hub = new_hub()
    healthy = [connect(hub, 1)[1], connect(hub, 2, "admin")[1]]
    slow_client, slow = connect(hub, 3, backlog=backlog)
    for n in range(5):
        hub.publish(alert(f"m{n}"), ALL)
    assert slow.closed == [(1013, "slow consumer")]
    assert slow_client.id not in hub.clients and 3 not in hub.by_user
    assert len(slow.sent) == 1  # dropped after the first send that left it over the limit
    for fake in healthy:
        assert [json.loads(e.text)["data"]["message"] for e in fake.sent] == [
            f"m{n}" for n in range(5)]
    assert hub.get_stats()["slow_consumers_dropped"] == 1


def test_backlog_at_the_limits_is_tolerated():
    """Exactly 256 queued messages and exactly 1 MiB unsent are still within the limits."""
    hub = new_hub()
    _, conn = connect(hub, 1, backlog=(MAX_QUEUED_MESSAGES, MAX_UNSENT_BYTES))
    hub.publish(alert(), ALL)
    assert conn.closed == [] and len(hub.clients) == 1


def test_hub_limits_are_configurable():
    """A hub built with smaller limits drops a connection past those limits."""
    hub = new_hub(max_queued_messages=2, max_unsent_bytes=100)
    _, conn = connect(hub, 1, backlog=(3, 0))
    hub.publish(alert(), ALL)
    assert conn.closed == [(1013, "slow consumer")]


def test_exception_in_one_send_does_not_stop_the_fan_out():
    """A connection whose send raises is dropped, and every later recipient still gets the event."""
    hub = new_hub()
    first = connect(hub, 1)[1]
    broken_client, broken = connect(hub, 2, fail=True)
    rest = [connect(hub, uid)[1] for uid in range(3, 8)]
    assert hub.publish(alert(), ALL) == 6  # the broken connection is not counted
    assert len(first.sent) == 1 and all(len(f.sent) == 1 for f in rest)
    assert broken.closed == [(1013, "slow consumer")]
    assert broken_client.id not in hub.clients
    assert hub.get_stats()["messages_delivered"] == 6


def test_slow_consumer_dropped_in_a_send_is_not_counted_as_delivered():
    """A connection closed as a slow consumer by a send does not count as a delivery of it."""
    hub = new_hub()
    connect(hub, 1)
    connect(hub, 2, backlog=(MAX_QUEUED_MESSAGES + 1, 0))
    assert hub.publish(alert(), ALL) == 1
    assert hub.get_stats()["messages_delivered"] == 1


def test_exception_in_close_does_not_stop_close_all():
    """close_all closes every connection even if one close raises."""
    hub = new_hub()
    fakes = [connect(hub, uid)[1] for uid in range(3)]

    def boom(code, reason):
        raise RuntimeError("already gone")

    fakes[0].close = boom
    assert hub.close_all(SHUTTING_DOWN) == 3
    assert fakes[1].closed == fakes[2].closed == [(1001, "server shutting down")]
    assert hub.clients == {}


def test_get_stats_shape_and_counts():
    """get_stats reports total clients, non-empty role counts, unique users, totals and a time."""
    hub = new_hub()
    connect(hub, 1, "user")
    connect(hub, 1, "user")
    connect(hub, 2, "admin")
    connect(hub, 3, "superadmin")
    hub.publish(alert(), ALL)
    hub.publish(alert(), to_user(1))
    stats = hub.get_stats()
    assert set(stats) == {"total_clients", "by_transport", "by_role", "unique_users",
                          "messages_delivered", "events_published", "slow_consumers_dropped",
                          "timestamp"}
    assert stats["by_transport"] == {"websocket": 4, "sse": 0}
    assert stats["total_clients"] == 4
    assert stats["by_role"] == {"admin": 1, "superadmin": 1, "user": 2}
    assert stats["unique_users"] == 3
    assert stats["events_published"] == 2 and stats["messages_delivered"] == 6
    assert stats["slow_consumers_dropped"] == 0
    assert stats["timestamp"].endswith("Z")


def test_memory_broker_requires_attach_and_forgets_handler_on_close():
    """MemoryBroker delivers through the attached hub and refuses to publish unattached."""
    broker = MemoryBroker()
    with pytest.raises(RuntimeError):
        broker.publish(SetRole(1, "user"))
    hub = make_hub(broker)
    _, conn = connect(hub, 1)
    assert broker.publish(Publication(alert(), ALL)) == 1
    assert len(conn.sent) == 1


@pytest.mark.gen_test
async def test_memory_broker_close_detaches():
    """Closing the broker detaches it from the hub."""
    broker = MemoryBroker()
    make_hub(broker)
    await broker.start()
    await broker.close()
    with pytest.raises(RuntimeError):
        broker.publish(SetRole(1, "user"))


def test_notifier_role_change_reaches_new_role_and_stops_old():
    """HubNotifier re-indexes before announcing, so a demoted admin is told once and then out."""
    hub = new_hub()
    notifier = HubNotifier(hub)
    demoted = connect(hub, 1, "admin")[1]
    admin = connect(hub, 2, "admin")[1]
    notifier.set_role(1, "user")
    for event in feed.role_changed(1, "admin", "user", 2, "2025-01-01T00:00:00Z"):
        hub.publish(Event(event.type, event.data), event.targets, logged=True)
    assert demoted.types == ["user.role.changed"] and admin.types == ["user.role.changed"]
    for event in feed.user_created({"id": 9, "name": "N", "email": "n@x.io", "role": "user",
                                    "created_at": "2025-01-01T00:00:00Z"}):
        hub.publish(Event(event.type, event.data), event.targets, logged=True)
    assert demoted.types == ["user.role.changed"]
    assert admin.types == ["user.role.changed", "user.created"]


def test_notifier_password_change_tells_user_before_closing_old_sessions():
    """password.changed reaches the old connection before it is closed as revoked."""
    hub = new_hub()
    notifier = HubNotifier(hub)
    _, old = connect(hub, 1, version=0)
    _, new = connect(hub, 1, version=1)
    for event in feed.password_changed(1):
        hub.publish(Event(event.type, event.data), event.targets, logged=True)
    notifier.close_older_sessions(1, 1)
    assert old.types == ["password.changed"] and old.closed == [(1008, "session revoked")]
    assert new.types == ["password.changed"] and new.closed == []


# -- channels -----------------------------------------------------------------------------


def test_channel_publish_reaches_its_subscribers_only_and_skips_a_user():
    """A channel send reaches subscribed connections; skip_user leaves that user's tabs out."""
    hub = new_hub()
    a1, a1c = connect(hub, 1)
    a2, a2c = connect(hub, 1)
    b, bc = connect(hub, 2)
    _, outsider = connect(hub, 3)
    for client in (a1, a2, b):
        assert hub.subscribe(client, "room:x")
    assert not hub.subscribe(a1, "room:x")  # idempotent
    assert hub.publish(alert(), (ToChannel("room:x"),)) == 3
    assert hub.publish(alert(), (ToChannel("room:x", skip_user=1),)) == 1
    assert [len(c.sent) for c in (a1c, a2c, bc, outsider)] == [1, 1, 2, 0]
    assert hub.subscriber_count("room:x") == 3


def test_room_send_costs_the_same_with_10_or_10000_sockets_in_other_rooms():
    """A send to one room calls send() only on its subscribers, however many others exist."""
    for others in (10, 10_000):
        hub = new_hub()
        fakes = []
        for i in range(others):
            client, conn = connect(hub, 1000 + i)
            hub.subscribe(client, f"room:other{i % 100}")
            fakes.append(conn)
        members = []
        for uid in range(3):
            client, conn = connect(hub, uid)
            hub.subscribe(client, "room:mine")
            members.append(conn)
        assert hub.publish(alert(), (ToChannel("room:mine"),)) == 3
        assert sum(len(f.sent) for f in fakes) == 0, others


def test_unregister_leaves_every_channel():
    """A closed connection is removed from every channel index it was in."""
    hub = new_hub()
    client, _ = connect(hub, 1)
    hub.subscribe(client, "room:a")
    hub.subscribe(client, "room:b")
    hub.unregister(client)
    assert hub.by_channel == {} and client.channels == set()


def test_a_detached_client_lets_its_connection_go_and_writes_nowhere():
    """Once its socket has closed and the hub let it go, a Client no longer refers to the
    connection (the two would otherwise keep each other alive); a frame still held for the
    iteration's flush, or a verb's late reply, goes nowhere without an error."""
    hub = new_hub()
    client, conn = connect(hub, 1)
    client.held, client.held_size = [b"frame"], 5
    hub.writes.add(client)
    hub.unregister(client)
    client.detach()
    assert client.conn is GONE and client.sock is None and client.held is None
    sent, gone = conn.sent, weakref.ref(conn)
    del conn
    assert gone() is None  # freed at once: nothing but the record referred to it
    hub.writes.flush()
    assert sent == [] and client.conn.write_frame(b"late") is True
    assert client.conn.backlog() == (0, 0) and client.conn.close(1000, "bye") is None


def test_unsubscribe_control_tells_each_affected_socket_once():
    """Unsubscribe for one user removes only their sockets and sends each channel.unsubscribed."""
    hub = new_hub()
    a, ac = connect(hub, 1)
    b, bc = connect(hub, 2)
    hub.subscribe(a, "room:x")
    hub.subscribe(b, "room:x")
    assert hub.control(Unsubscribe("room:x", "removed from room", user_id=1)) == 1
    assert "room:x" not in a.channels and "room:x" in b.channels
    (event,) = ac.sent
    message = json.loads(event.text)
    assert message["type"] == "channel.unsubscribed" and message["channel"] == "room:x"
    assert message["data"] == {"channel": "room:x", "reason": "removed from room"}
    assert bc.sent == []
    assert hub.control(Unsubscribe("room:x", "room deleted")) == 1
    assert json.loads(bc.sent[0].text)["data"]["reason"] == "room deleted"
    assert hub.by_channel == {}


def test_presence_announcements_reach_room_and_admins():
    """Joining a room tells its subscribers presence.joined; connecting tells admins user.online."""
    clock = FakeClock()
    hub = make_hub(MemoryBroker(), presence=MemoryPresence(scheduler=clock),
                   typing=Typing(lambda *a: None, scheduler=clock, clock=clock))
    admin, admin_conn = connect(hub, 9, "admin")
    user, user_conn = connect(hub, 1)
    assert admin_conn.types == ["user.online", "user.online"]  # the admin's own, the user's
    hub.subscribe(admin, "room:x")
    hub.subscribe(user, "room:x")
    assert user_conn.types == ["presence.joined"]
    assert admin_conn.types[-2:] == ["presence.joined", "presence.joined"]
    hub.unregister(user)
    clock.advance(5.1)
    assert admin_conn.types[-2:] == ["presence.left", "user.offline"]


def test_event_timestamps_follow_the_clock_across_seconds(monkeypatch):
    """now_rfc3339 reuses its date-and-seconds text within a second: every millisecond still
    reads as the clock says, also at a second's and a day's turn and when time steps back."""
    import datetime as dt

    from hub import events

    for ms in (1_790_000_000_999, 1_790_000_001_000, 1_790_000_001_001, 1_790_000_001_999,
               1_790_000_002_000, 1_790_000_000_500, 1_790_035_199_999, 1_790_035_200_000):
        monkeypatch.setattr(events.time, "time_ns", lambda ms=ms: ms * 1_000_000)
        expected = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert events.now_rfc3339() == expected


def test_client_ids_are_distinct_version_4_uuids_across_draws():
    """Ids come 256 to a draw from the random source: over three draws, each is the text of a
    version 4, RFC 4122 UUID, as str(uuid.uuid4()) gives, and none repeats."""
    ids = [new_client_id() for _ in range(3 * 256 + 7)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    assert len({text[14] for text in ids}) == 1  # the version digit, fixed
    assert len({text[19] for text in ids}) == 4  # 8, 9, a or b: the variant's two bits fixed
    assert len({text[0] for text in ids}) == 16  # the rest random
