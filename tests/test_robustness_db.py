"""Robustness of database work: write locks, races, id reuse, dropped connections, outages."""

from __future__ import annotations

import asyncio
import sqlite3

import peewee
import pytest
from conftest import POSTGRES_URL, _run_admin_sql, next_event

from models import db as dbmod
from models.db import _in_connection
from models.user import User
from services.errors import DatabaseBusy

REFRESH = "/api/v1/auth/refresh"


# -- SQLite write locks and the refresh race -------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_parallel_refreshes_give_one_winner_and_revoke_the_family(api):
    """Six parallel refreshes of one token: one 200, five 401, and the family is revoked."""
    user = await api.register()
    body = {"refresh_token": user["refresh_token"]}
    results = await asyncio.gather(*(api.call("POST", REFRESH, body) for _ in range(6)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 401, 401, 401, 401, 401], [r[:2] for r in results]
    winner = next(parsed["data"] for status, parsed, _ in results if status == 200)
    status, _, _ = await api.call("POST", REFRESH, {"refresh_token": winner["refresh_token"]})
    assert status == 401  # the winner's new refresh token died with its session
    status, _, _ = await api.call("GET", "/api/v1/users/me", token=winner["access_token"])
    assert status == 401


def test_database_is_locked_becomes_a_503_error():
    """SQLite's "database is locked" from a job is a DatabaseBusy (503), never a plain 500."""
    database = peewee.SqliteDatabase(":memory:")
    dbmod.db.initialize(database)

    def locked() -> None:
        raise peewee.OperationalError("database is locked")

    with pytest.raises(DatabaseBusy) as caught:
        _in_connection(locked)
    assert caught.value.status == 503 and caught.value.retry_after >= 1


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_write_held_past_the_busy_timeout_answers_503(api, tmp_path):
    """A writer holding SQLite's lock past the busy timeout makes a write answer 503, not 500."""
    user = await api.register()
    await api.ctx.run(lambda: dbmod.db.execute_sql("PRAGMA busy_timeout = 100"))
    blocker = sqlite3.connect(str(tmp_path / "test.db"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        status, parsed, headers = await api.call(
            "PATCH", "/api/v1/users/me", {"name": "Blocked"}, token=user["access_token"])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert status == 503, parsed
    assert parsed["error"]["code"] in ("database_busy", "database_unavailable")
    assert headers.get("Retry-After")


# -- deletes and ids -----------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_racing_deletes_give_one_200_and_one_event(api):
    """Five parallel deletes of one user: one 200, four 404, one user.deleted to admins."""
    admin = await api.admin()
    target = (await api.register())["user"]["id"]
    conn = await api.ws(admin["access_token"])
    results = await asyncio.gather(*(
        api.call("DELETE", f"/api/v1/users/{target}", token=admin["access_token"])
        for _ in range(5)))
    assert sorted(r[0] for r in results) == [200, 404, 404, 404, 404]
    # A broadcast after the deletes marks the end: count the deletions seen before it.
    await api.call("POST", "/ws/broadcast", {"message": "end"}, token=admin["access_token"])
    seen = []
    while (event := await next_event(conn))["type"] != "system.alert":
        seen.append(event["type"])
    assert seen.count("user.deleted") == 1, seen
    conn.close()


@pytest.mark.gen_test
async def test_ids_of_deleted_users_are_never_reused(api):
    """Deleting the newest user does not free its id for the next registration."""
    admin = await api.admin()
    newest = (await api.register())["user"]["id"]
    status, _, _ = await api.call("DELETE", f"/api/v1/users/{newest}",
                                  token=admin["access_token"])
    assert status == 200
    assert (await api.register())["user"]["id"] > newest


def test_existing_sqlite_database_is_migrated_to_autoincrement(tmp_path):
    """An old users table gains AUTOINCREMENT on start-up; rows, ids and sessions survive."""
    path = str(tmp_path / "old.db")
    raw = sqlite3.connect(path)
    raw.executescript("""
        CREATE TABLE "users" ("id" INTEGER NOT NULL PRIMARY KEY, "name" VARCHAR(100) NOT NULL,
          "email" VARCHAR(254) NOT NULL, "password_hash" VARCHAR(255) NOT NULL, "age" INTEGER,
          "role" VARCHAR(20) NOT NULL, "token_version" INTEGER NOT NULL,
          "created_at" DATETIME NOT NULL, "updated_at" DATETIME NOT NULL);
        CREATE UNIQUE INDEX "user_email" ON "users" ("email");
        CREATE TABLE "sessions" ("id" VARCHAR(36) NOT NULL PRIMARY KEY,
          "user_id" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, "revoked_at" DATETIME,
          FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);
        INSERT INTO users VALUES (1, 'A', 'a@x.io', 'h', NULL, 'user', 1, '2025-01-01', '2025');
        INSERT INTO users VALUES (2, 'B', 'b@x.io', 'h', NULL, 'user', 1, '2025-01-01', '2025');
        INSERT INTO sessions VALUES ('s1', 2, '2025-01-01', NULL);
    """)
    raw.close()
    for _ in range(2):  # idempotent: a second start-up changes nothing
        database = dbmod.init_db("sqlite:///" + path)
        database.close()
    database = dbmod.init_db("sqlite:///" + path)
    with dbmod.db.connection_context():
        sql = database.execute_sql("SELECT sql FROM sqlite_master WHERE name='users'").fetchone()
        assert "AUTOINCREMENT" in sql[0]
        assert [(u.id, u.email) for u in User.select().order_by(User.id)] == [
            (1, "a@x.io"), (2, "b@x.io")]
        User.delete().where(User.id == 2).execute()
        assert database.execute_sql("SELECT count(*) FROM sessions").fetchone()[0] == 0  # cascade
        created = User.create(name="C", email="c@x.io", password_hash="h")
        assert created.id == 3
        with pytest.raises(peewee.IntegrityError):
            User.create(name="D", email="a@x.io", password_hash="h")  # unique index kept


# -- PostgreSQL: dropped connections and an outage -------------------------------------------


class Proxy:
    """A TCP proxy in front of PostgreSQL that the test can cut and restore."""

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        except OSError:
            writer.close()
            return
        self.pipes.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        """Stops listening and drops every proxied connection (the database is 'down')."""
        assert self.server is not None
        self.server.close()
        for writer in self.pipes:
            writer.transport.abort()
        self.pipes.clear()
        await self.server.wait_closed()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_dropped_connections_are_retried_on_a_fresh_one(api):
    """After the server kills every app connection, the next requests still answer 200."""
    user = await api.register()
    token = user["access_token"]
    warm = await asyncio.gather(*(api.call("GET", "/api/v1/users/me", token=token)
                                  for _ in range(8)))  # several workers now hold a connection
    assert [r[0] for r in warm] == [200] * 8
    pids = [c.connection.get_backend_pid() for c in dbmod.db.obj._in_use.values()]
    assert pids
    _run_admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE pid IN ({', '.join(map(str, pids))})")
    results = await asyncio.gather(*(api.call("GET", "/api/v1/users/me", token=token)
                                     for _ in range(8)))
    assert [r[0] for r in results] == [200] * 8


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_outage_answers_503_with_retry_after_and_recovers(api):
    """While PostgreSQL is unreachable REST answers 503 + Retry-After; then it recovers alone."""
    user = await api.register()
    token = user["access_token"]
    proxy = Proxy()
    await proxy.start()
    original = dbmod.db.obj
    schema_options = original.connect_params["options"]
    via_proxy = dbmod.open_database(POSTGRES_URL.replace(":5432", f":{proxy.port}"))
    via_proxy.connect_params["options"] = schema_options
    # No background database job may straddle the swap (its transaction would be left open).
    api.ctx.relay.stop_polling()
    await api.ctx.relay.flush()
    await api.ctx.messages.flush()
    dbmod.db.initialize(via_proxy)
    try:
        assert (await api.call("GET", "/api/v1/users/me", token=token))[0] == 200
        await proxy.cut()
        status, parsed, headers = await api.call("GET", "/api/v1/users/me", token=token)
        assert status == 503, parsed
        assert parsed["error"]["code"] == "database_unavailable"
        assert int(headers["Retry-After"]) > 0
        await proxy.start()  # the database is back on the same address
        for _ in range(50):
            status, parsed, _ = await api.call("GET", "/api/v1/users/me", token=token)
            if status == 200:
                break
            await asyncio.sleep(0.1)  # polling until recovery
        assert status == 200, parsed
    finally:
        await proxy.cut()
        via_proxy.close_all()
        dbmod.db.initialize(original)


@pytest.mark.gen_test
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_ws_refresh_during_an_outage_gets_an_error_not_a_close(api, monkeypatch):
    """An auth.refresh while the database is down gets an `unavailable` error; the socket stays."""
    from services.errors import DatabaseUnavailable

    user = await api.register()
    conn = await api.ws(user["access_token"])

    async def down(token: str) -> None:
        raise DatabaseUnavailable()

    monkeypatch.setattr(api.ctx.auth, "authenticate", down)
    conn.write_message('{"type": "auth.refresh", "data": {"token": "t"}}')
    event = await next_event(conn)
    assert event["type"] == "error" and event["data"]["code"] == "unavailable", event
    conn.write_message('{"type": "nope"}')
    assert (await next_event(conn))["data"]["code"] == "unknown_type"
    conn.close()
