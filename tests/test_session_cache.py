"""The session cache: a verified session skips the database, and every revocation clears it."""

from __future__ import annotations

import asyncio

import pytest
from conftest import next_event
from fakeclock import FakeClock
from tornado.websocket import websocket_connect
from wsutil import reject

from auth.jwt import Claims
from hub.disconnect import SESSION_REVOKED
from hub.messages import CloseSession, CloseUser, SetRole, Unsubscribe
from models.token import Session
from models.user import utcnow
from services.principal import Principal
from services.sessions import SessionCache

# -- the cache itself -------------------------------------------------------------------------


def claims(sid: str = "s1", user_id: int = 7, ver: int = 0, exp: int = 2_000_000_000) -> Claims:
    """Returns verified access-token claims."""
    return Claims(user_id=user_id, typ="access", ver=ver, sid=sid, exp=exp)


def principal(sid: str = "s1", user_id: int = 7, ver: int = 0, role: str = "user") -> Principal:
    """Returns what a database check of that session finds."""
    return Principal(user_id, "Ann", role, ver, sid, 2_000_000_000)


def test_a_stored_session_is_a_hit_until_its_ttl_passes():
    """A checked session is returned without the database for ttl seconds, then missed."""
    clock = FakeClock()
    cache = SessionCache(ttl=5, clock=clock)
    assert cache.get(claims()) is None
    cache.put(principal(), cache.generation)
    assert cache.get(claims()) == principal()
    clock.advance(4.9)
    assert cache.get(claims()) is not None
    clock.advance(0.2)
    assert cache.get(claims()) is None
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_token_of_another_version_or_user_misses():
    """A hit needs the token's user and version to match what the database found."""
    cache = SessionCache(ttl=5, clock=FakeClock())
    cache.put(principal(ver=3), cache.generation)
    assert cache.get(claims(ver=2)) is None
    assert cache.get(claims(ver=3, user_id=8)) is None
    hit = cache.get(claims(ver=3, exp=2_000_000_100))
    assert hit is not None and hit.expires_at == 2_000_000_100  # this token's own expiry


def test_the_cache_keeps_at_most_size_sessions_oldest_out():
    """Past its size the oldest stored session is dropped first."""
    cache = SessionCache(ttl=5, size=3, clock=FakeClock())
    for n in range(5):
        cache.put(principal(sid=f"s{n}"), cache.generation)
    assert len(cache) == 3
    assert [cache.get(claims(sid=f"s{n}")) is not None for n in range(5)] == [
        False, False, True, True, True]


def test_a_check_that_began_before_a_revocation_is_not_stored():
    """What the database said before an invalidation may predate the revocation: not kept."""
    cache = SessionCache(ttl=5, clock=FakeClock())
    generation = cache.generation
    cache.forget_session("other")
    cache.put(principal(), generation)
    assert cache.get(claims()) is None


def test_each_revoking_control_clears_what_it_revokes():
    """CloseSession clears the session; CloseUser and SetRole every session of the user."""
    cache = SessionCache(ttl=5, clock=FakeClock())
    for sid, uid in (("a", 1), ("b", 1), ("c", 2), ("d", 3)):
        cache.put(principal(sid=sid, user_id=uid), cache.generation)
    cache.apply(Unsubscribe("room:x", "removed", 1))  # not a revocation
    assert len(cache) == 4
    cache.apply(CloseSession("c", SESSION_REVOKED))
    assert cache.get(claims(sid="c", user_id=2)) is None and len(cache) == 3
    cache.apply(CloseUser(1, SESSION_REVOKED, below_version=1))
    assert len(cache) == 1
    cache.apply(SetRole(3, "admin"))
    assert len(cache) == 0


def test_a_zero_ttl_stores_nothing():
    """--session-cache-ttl 0 turns the cache off."""
    cache = SessionCache(ttl=0)
    cache.put(principal(), cache.generation)
    assert len(cache) == 0


@pytest.mark.gen_test
async def test_concurrent_misses_for_one_session_share_one_check():
    """Tabs of one session authenticating together cost one database check."""
    cache = SessionCache(ttl=5)
    calls = []
    gate = asyncio.Event()

    async def check(c: Claims) -> Principal:
        calls.append(c.sid)
        await gate.wait()
        return principal()

    tasks = [asyncio.ensure_future(cache.lookup(claims(), check)) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    assert {p.session_id for p in await asyncio.gather(*tasks)} == {"s1"}
    assert calls == ["s1"]


@pytest.mark.gen_test
async def test_a_revocation_during_a_shared_check_makes_the_waiters_check_again():
    """Waiters do not take a result that began before a revocation; each checks anew."""
    cache = SessionCache(ttl=5)
    calls = []
    gate = asyncio.Event()
    revoked = False

    async def check(c: Claims) -> Principal:
        calls.append(c.sid)
        if not revoked:
            await gate.wait()
            return principal()
        raise PermissionError("session revoked")

    first = asyncio.ensure_future(cache.lookup(claims(), check))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(cache.lookup(claims(), check))
    await asyncio.sleep(0.01)
    cache.forget_session("s1")
    revoked = True
    gate.set()
    assert (await first).session_id == "s1"  # began before: as without a cache
    with pytest.raises(PermissionError):
        await second
    assert len(cache) == 0 and calls == ["s1", "s1"]


# -- through the server: each revocation path refuses the next handshake at once -------------


async def warm(api, token: str) -> None:
    """Opens /ws twice, so the session is in the cache and the second open was a hit."""
    hits = api.ctx.auth.sessions.hits
    for _ in range(2):
        (await api.ws(token)).close()
    assert api.ctx.auth.sessions.hits > hits


async def refused(api, token: str) -> None:
    """A new /ws handshake with token is refused with 401 right now."""
    status, body, _ = await reject(f"{api.ws_url}/ws?token={token}")
    assert status == 401, body


@pytest.mark.gen_test(timeout=30)
async def test_logout_refuses_the_cached_session_at_once(api):
    """After logout the session's access token opens no socket, cache or not."""
    user = await api.register()
    await warm(api, user["access_token"])
    status, _, _ = await api.call("POST", "/api/v1/auth/logout", {}, user["access_token"])
    assert status in (200, 204)
    await refused(api, user["access_token"])


@pytest.mark.gen_test(timeout=30)
async def test_a_reused_refresh_token_revokes_the_cached_session_at_once(api):
    """Refresh-token reuse revokes the session; its access token is refused at once."""
    user = await api.register()
    await warm(api, user["access_token"])
    body = {"refresh_token": user["refresh_token"]}
    assert (await api.call("POST", "/api/v1/auth/refresh", body))[0] == 200
    assert (await api.call("POST", "/api/v1/auth/refresh", body))[0] == 401  # reuse
    await refused(api, user["access_token"])


@pytest.mark.gen_test(timeout=30)
async def test_a_password_change_refuses_the_cached_older_token_at_once(api):
    """The token_version bump of a password change refuses the old token at once."""
    user = await api.register()
    await warm(api, user["access_token"])
    status, parsed, _ = await api.call(
        "POST", "/api/v1/users/me/password",
        {"current_password": "password123", "new_password": "password456"},
        user["access_token"])
    assert status == 200, parsed
    await refused(api, user["access_token"])
    (await api.ws(parsed["data"]["access_token"])).close()  # the new token works


@pytest.mark.gen_test(timeout=30)
async def test_a_deleted_account_is_refused_at_once(api):
    """Deleting an account refuses its cached session at once."""
    admin, user = await api.admin(), await api.register()
    await warm(api, user["access_token"])
    status, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                  token=admin["access_token"])
    assert status in (200, 204)
    await refused(api, user["access_token"])


@pytest.mark.gen_test(timeout=30)
async def test_a_role_change_shows_at_once_on_the_next_socket(api):
    """A promoted user's next socket carries the new role, not the cached one."""
    admin, user = await api.admin(), await api.register()
    await warm(api, user["access_token"])
    status, _, _ = await api.call("PUT", f"/api/v1/users/{user['user']['id']}/role",
                                  {"role": "admin"}, admin["access_token"])
    assert status == 200
    conn = await websocket_connect(f"{api.ws_url}/ws?token={user['access_token']}")
    welcome = await next_event(conn)
    assert welcome["type"] == "connection.established" and welcome["data"]["role"] == "admin"
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_revocation_on_another_node_clears_this_nodes_cache(api):
    """A session revoked elsewhere (the shared database, then the broker's CloseSession) is
    served from this node's cache until the control arrives, and refused as soon as it does."""
    user = await api.register()
    token = user["access_token"]
    await warm(api, token)
    sid = api.ctx.issuer.verify(token, "access").sid
    # The other node revokes the row; no local notifier runs here.
    await api.ctx.run(lambda: Session.update(revoked_at=utcnow()).where(Session.id == sid)
                      .execute())
    (await api.ws(token)).close()  # still cached: the TTL bounds this window
    api.ctx.hub.handle(CloseSession(sid, SESSION_REVOKED))  # as the broker delivers it
    await refused(api, token)


def test_session_principals_read_sessions_with_their_users_in_one_statement_built_once(database):
    """The cache's database check: one statement per database and number of ids, built once,
    reads every session asked for with its user; an unknown id is left out, a repeated one
    read once."""
    from models import token
    from models.db import db
    from models.user import User

    ann = User.create(name="Ann", email="ann@example.com", password_hash="x", role="admin")
    bob = User.create(name="Bob", email="bob@example.com", password_hash="x", role="user")
    Session.create(id="sess-1", user=ann)
    Session.create(id="sess-2", user=bob)
    assert token.session_principals(["sess-1", "no-such-session", "sess-2", "sess-1"]) == {
        "sess-1": (None, ann.id, "Ann", "admin", 1), "sess-2": (None, bob.id, "Bob", "user", 1)}
    assert token.session_principals(["no-such-session"]) == {}
    Session.update(revoked_at=utcnow()).where(Session.id == "sess-1").execute()
    revoked_at, *rest = token.session_principals(["sess-1"])["sess-1"]
    assert revoked_at is not None and rest == [ann.id, "Ann", "admin", 1]
    built = token._PRINCIPAL_SQL[db.obj]
    assert sorted(built) == [1, 3]  # one per number of distinct ids asked for
    for count, sql in built.items():
        assert sql.count("?") + sql.count("%s") == count


def test_session_principals_read_more_ids_than_one_statement_takes(database):
    """Ids past MAX_IDS go in further statements; every session is found."""
    from models import token
    from models.user import User

    user = User.create(name="Ann", email="ann@example.com", password_hash="x", role="user")
    ids = [f"sess-{i}" for i in range(token.MAX_IDS * 2 + 5)]
    Session.insert_many([{"id": sid, "user": user.id} for sid in ids]).execute()
    found = token.session_principals(ids)
    assert sorted(found) == sorted(ids)
    assert all(row == (None, user.id, "Ann", "user", 1) for row in found.values())


@pytest.mark.gen_test(timeout=30)
async def test_handshakes_that_miss_the_cache_go_through_the_batched_check(api):
    """Sockets of eight users opened at once each pass the database check through the batch
    (models.db.Batch, whose sharing tests/test_db_batch.py proves): every socket belongs to
    its user, and a revoked one among them is refused without failing the others."""
    users = [await api.register() for _ in range(8)]
    revoked = users[3]
    status, _, _ = await api.call("POST", "/api/v1/auth/logout", {}, revoked["access_token"])
    assert status == 200
    checks = api.ctx.auth.session_checks
    jobs, items = checks.jobs, checks.items
    outcomes = await asyncio.gather(
        *(websocket_connect(f"{api.ws_url}/ws?token={u['access_token']}") for u in users),
        return_exceptions=True)
    assert checks.items - items == 8
    assert checks.jobs > jobs
    assert isinstance(outcomes[3], Exception)
    for i, conn in enumerate(outcomes):
        if i == 3:
            continue
        welcome = await next_event(conn)
        assert welcome["data"]["user_id"] == users[i]["user"]["id"]
        conn.close()


def test_check_sessions_reads_a_batch_at_once_and_answers_each_token_on_its_own(database):
    """One call for a batch: each token gets its principal or its own refusal, in order."""
    from auth.jwt import Claims
    from models.user import User
    from services.auth import AuthService
    from services.errors import AuthenticationError

    ann = User.create(name="Ann", email="ann@example.com", password_hash="x", role="admin")
    bob = User.create(name="Bob", email="bob@example.com", password_hash="x", role="user")
    Session.create(id="s-ann", user=ann)
    Session.create(id="s-bob", user=bob)
    Session.create(id="s-old", user=ann, revoked_at=utcnow())

    def claims(user_id: int, sid: str, ver: int = 1) -> Claims:
        return Claims(user_id=user_id, typ="access", ver=ver, sid=sid, exp=2_000_000_000)

    outcomes = AuthService.check_sessions([
        claims(ann.id, "s-ann"), claims(ann.id, "s-old"), claims(bob.id, "s-bob"),
        claims(bob.id, "s-bob", ver=2), claims(9999, "s-gone"), claims(ann.id, "s-ann")])
    assert [ok for ok, _ in outcomes] == [True, False, True, False, False, True]
    assert (outcomes[0][1].id, outcomes[0][1].name, outcomes[0][1].role) == (ann.id, "Ann", "admin")
    assert (outcomes[2][1].id, outcomes[2][1].session_id) == (bob.id, "s-bob")
    assert outcomes[5][1] == outcomes[0][1]
    refusals = [value for ok, value in outcomes if not ok]
    assert all(isinstance(r, AuthenticationError) for r in refusals)
    assert [str(r) for r in refusals] == ["session revoked", "session revoked",
                                          "account not found"]
