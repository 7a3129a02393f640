"""Shared fixtures: a database per backend, the app with its context, and API/WS helpers."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import replace
from typing import Any

import peewee
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from app import make_app, make_context, upgrade_route
from config import Settings
from context import Context
from edge.loop import loop_factory
from edge.server import EdgeServer
from models import db as dbmod
from models.user import User
from services.rooms import ensure_lobby

IN_CI = os.environ.get("CI", "").lower() == "true"
# The event loop the tests run on, and the servers they start (LOOP is --loop's variable):
# the server's default (auto: uvloop when installed) unless TEST_LOOP names the other one;
# CI runs the suite on the default and the WebSocket, SSE and cluster tests on asyncio too.
TEST_LOOP = os.environ.get("TEST_LOOP", "auto")
os.environ["LOOP"] = TEST_LOOP
if loop_factory(TEST_LOOP) is not asyncio.new_event_loop:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_SECRET = "test-secret-" + "x" * 40

# A schema per test process keeps concurrent runs on the shared `test` database apart.
_SCHEMA = f"t_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _run_admin_sql(statement: str) -> None:
    """Runs one statement on the test database in autocommit mode."""
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _postgres_database() -> peewee.Database:
    from models.db import open_database

    _run_admin_sql(f"CREATE SCHEMA IF NOT EXISTS {_SCHEMA}")
    database = open_database(POSTGRES_URL)
    # A transaction abandoned mid-way (a test swaps the database under a background job)
    # must not hold its locks forever: PostgreSQL ends it after 5 s idle.
    database.connect_params["options"] = (
        f"-c search_path={_SCHEMA} -c idle_in_transaction_session_timeout=5000")
    database.connect_params["application_name"] = _SCHEMA
    return database


def _end_test_connections() -> None:
    """Ends this test process's leftover PostgreSQL sessions (a worker thread's connection
    left idle in a transaction would otherwise block DROP TABLE at teardown forever)."""
    _run_admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE application_name = '{_SCHEMA}' AND pid <> pg_backend_pid()")


def _drop_schema() -> None:
    try:
        _run_admin_sql(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE")
    except Exception:
        pass  # PostgreSQL is absent: there is no schema to drop


@pytest.fixture(scope="session", autouse=True)
def _cleanup_postgres_schema():
    yield
    _drop_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """Binds the models to a clean database: SQLite in a temp dir, then PostgreSQL."""
    if request.param == "sqlite":
        database = dbmod.open_database("sqlite:///" + str(tmp_path / "test.db"))
    else:
        try:
            database = _postgres_database()
            database.connect()
            database.close()
        except Exception as exc:
            message = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    dbmod.db.initialize(database)
    dbmod.drop_tables()
    dbmod.create_tables()
    ensure_lobby()
    yield request.param
    if request.param == "postgresql":
        database.close_all()
        _end_test_connections()
    dbmod.drop_tables()
    database.close_all() if hasattr(database, "close_all") else database.close()


@pytest.fixture
def settings(request, tmp_path) -> Settings:
    """Test settings; override fields with @pytest.mark.settings(field=value)."""
    base = Settings(data_dir=str(tmp_path / "data"), jwt_secret=TEST_SECRET, health_interval=3600)
    if os.environ.get("TEST_BROKER") == "redis":  # the suite against the Redis broker
        base = replace(base, broker="redis", redis_prefix=f"t{uuid.uuid4().hex[:12]}")
    marker = request.node.get_closest_marker("settings")
    return replace(base, **marker.kwargs) if marker else base


@pytest.fixture
def ctx(database, settings, io_loop) -> Context:
    """The application context (hub, services, thread pool) for one test, started as
    main.py starts it (streams restored, outbox relay polling)."""
    context = make_context(settings)
    io_loop.run_sync(context.broker.start)
    io_loop.run_sync(context.start)
    yield context
    context.relay.stop_polling()
    io_loop.run_sync(context.webhooks.close, timeout=5)  # queued webhooks, then the relay
    if context.hook_client is not None:
        io_loop.run_sync(context.hook_client.close, timeout=5)
    try:  # the relay's write-behind marks finish on this test's loop, not a later one's
        io_loop.run_sync(context.relay.close, timeout=5)
    except Exception:
        pass  # a test broke the database on purpose; nothing more to store
    if context.redis is not None:
        io_loop.run_sync(context.broker.close, timeout=5)
        io_loop.run_sync(context.redis.aclose, timeout=5)
    context.shutdown_pools()


@pytest.fixture
def app(ctx):
    """The Tornado application under test (served by the http_server fixture below)."""
    return make_app(ctx)


@pytest.fixture
def http_server(request, io_loop, _unused_port, app, ctx):
    """The server main.py runs (EdgeServer, with its upgrade lane for /ws), on the port
    pytest-tornado picked; replaces pytest-tornado's plain HTTPServer."""
    server = EdgeServer(app, settings=ctx.settings,
                        upgrade_route=None if os.environ.get("NO_LANE") else upgrade_route(ctx))
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections,
                     timeout=request.config.option.async_test_timeout)


class Api:
    """A small JSON client for the app under test."""

    def __init__(self, base_url: str, ctx: Context) -> None:
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://")
        self.ctx = ctx
        self.client = AsyncHTTPClient()
        self._n = 0

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None,
        raw: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        """Sends a request; returns (status, parsed JSON body or None, response headers)."""
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        request = HTTPRequest(self.base_url + path, method=method, body=data, headers=hdrs,
                              allow_nonstandard_methods=True, request_timeout=30)
        response = await self.client.fetch(request, raise_error=False)
        try:
            parsed = json.loads(response.body) if response.body else None
        except ValueError:
            parsed = None
        return response.code, parsed, response.headers

    async def register(self, name: str = "", email: str = "", password: str = "password123",
                       age: int | None = 30) -> dict[str, Any]:
        """Registers a fresh user; returns the response's data (tokens and user)."""
        self._n += 1
        email = email or f"user{self._n}-{uuid.uuid4().hex[:6]}@example.com"
        body = {"name": name or f"User {self._n}", "email": email, "password": password}
        if age is not None:
            body["age"] = age
        status, parsed, _ = await self.call("POST", "/api/v1/auth/register", body)
        assert status == 201, parsed
        return parsed["data"]

    async def login(self, email: str, password: str = "password123") -> dict[str, Any]:
        status, parsed, _ = await self.call(
            "POST", "/api/v1/auth/login", {"email": email, "password": password})
        assert status == 200, parsed
        return parsed["data"]

    async def admin(self, role: str = "admin") -> dict[str, Any]:
        """Registers a user, gives it `role` in the database and logs in again for a token."""
        data = await self.register()
        user_id = data["user"]["id"]
        await self.ctx.run(lambda: User.update(role=role).where(User.id == user_id).execute())
        return await self.login(data["user"]["email"])

    async def ws(self, token: str, **kwargs: Any) -> WebSocketClientConnection:
        """Opens /ws with token and returns the connection after the welcome is read."""
        conn = await websocket_connect(f"{self.ws_url}/ws?token={token}", **kwargs)
        welcome = await next_event(conn)
        assert welcome["type"] == "connection.established", welcome
        return conn


# Admins hear user.online / user.offline whenever anyone connects or (5 s later) leaves; tests
# of other events skip them. Presence tests pass skip=().
PRESENCE_NOISE = ("user.online", "user.offline")


async def next_event(
    conn: WebSocketClientConnection, timeout: float = 5.0, skip: tuple[str, ...] = PRESENCE_NOISE
) -> dict[str, Any]:
    """Returns the next event on conn as a dict (skipping the types in `skip`), failing if the
    socket closes or nothing comes within timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await asyncio.wait_for(conn.read_message(), max(0.01, deadline - loop.time()))
        assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
        event = json.loads(message)
        if event.get("type") not in skip:
            return event


async def wait_closed(conn: WebSocketClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Reads until the server closes conn; returns (close code, reason)."""
    async def drain() -> None:
        while await conn.read_message() is not None:
            pass
    await asyncio.wait_for(drain(), timeout)
    return conn.close_code, conn.close_reason


@pytest.fixture
def api(http_server, base_url, ctx) -> Api:
    """An Api client bound to the running test server."""
    return Api(base_url, ctx)


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**fields): override Settings for the test")
    config.addinivalue_line(
        "markers", "slow: a long test (real processes, faults); still part of `make test`")
