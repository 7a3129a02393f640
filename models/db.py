"""Binds the database proxy and runs blocking database work on a bounded thread pool."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase

from models.errors import DatabaseBusy, DatabaseUnavailable

__all__ = [
    "db", "open_database", "init_db", "create_tables", "drop_tables", "Runner", "Batch",
    "BaseModel", "write_tx",
]

T = TypeVar("T")
A = TypeVar("A")

# Bound by init_db() at start-up; tests bind their own database.
db = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    """Base class binding every model to the shared proxy."""

    class Meta:
        database = db


def open_database(url: str) -> peewee.Database:
    """Returns an unbound SQLite or pooled PostgreSQL database for url."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return peewee.SqliteDatabase(
            path,
            # cache_size: 256 KiB of pages per connection (SQLite's default is 2 MiB): every
            # pool thread keeps its own connection, the OS caches the file for all of them,
            # and the default let RSS climb for minutes as each cache filled.
            pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000,
                     "cache_size": -256},
            check_same_thread=False,
        )
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}")
    return PooledPostgresqlDatabase(
        unquote(parsed.path.lstrip("/")) or "postgres",
        user=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        max_connections=32,
        stale_timeout=300,
        connect_timeout=5,
    )


def write_tx() -> Any:
    """Returns a transaction for read-then-write work that takes the write lock up front.

    On SQLite a plain BEGIN is deferred: two transactions can both read, then one fails to
    upgrade its lock ("database is locked") and rolls back. BEGIN IMMEDIATE makes the second
    wait (up to the busy timeout) for the first to commit, so they serialise. PostgreSQL's
    row locks already serialise the conflicting UPDATEs; its atomic() takes no lock type.
    """
    if isinstance(db.obj, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def _models() -> list[type[peewee.Model]]:
    from models.apikey import ApiKey, IdempotentRequest
    from models.outbox import OutboxEvent, StreamState
    from models.room import Room, RoomMember, RoomMessage
    from models.token import RefreshToken, Session
    from models.user import User
    from models.webhook import Webhook, WebhookSocket

    return [User, Session, RefreshToken, Room, RoomMember, RoomMessage, OutboxEvent, StreamState,
            ApiKey, IdempotentRequest, Webhook, WebhookSocket]


def init_db(url: str) -> peewee.Database:
    """Opens the database at url, binds the proxy to it and creates missing tables."""
    database = open_database(url)
    db.initialize(database)
    create_tables()
    return database


# (table, column, SQL type) of every nullable column added to a table after its first release.
ADDED_COLUMNS = (("room_messages", "stream_offset", "BIGINT"),
                 ("room_messages", "api_key", "VARCHAR(100)"),
                 ("users", "external_id", "VARCHAR(255)"))


def create_tables() -> None:
    """Creates every model's table if it does not exist."""
    from models.migrate import ensure_autoincrement, ensure_column

    with db.connection_context():
        # Columns added since a table was first made come first: the indexes create_tables()
        # adds may name them (SQLite would read an unknown quoted column as a string literal).
        existing = set(db.get_tables())
        for table, column, sql_type in ADDED_COLUMNS:
            if table in existing:
                ensure_column(db.obj, table, column, sql_type)
        db.create_tables(_models(), safe=True)
        ensure_autoincrement(db.obj, "users")
        ensure_autoincrement(db.obj, "outbox")


def drop_tables() -> None:
    """Drops every model's table (tests use this for clean tables)."""
    with db.connection_context():
        db.drop_tables(_models(), safe=True)


class Runner:
    """Runs blocking callables (database work, password hashing) on a bounded thread pool.

    Each database worker keeps one connection open for its lifetime: opening a SQLite file
    and applying its pragmas on every job would cost more than most queries. A connection
    that fails is closed, so the worker's next job opens a fresh one.
    """

    def __init__(
        self, max_workers: int = 4, name: str = "db", nice: int = 0, database: bool = True
    ) -> None:
        self.database = database
        self.name = name
        # Jobs submitted but not yet started, and an optional hook called with each job's
        # seconds from submission to completion (metrics attach here).
        self.queued = 0
        self.observe_job: Callable[[float], None] | None = None
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=name, initializer=_lower_priority,
            initargs=(nice,),
        )

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs fn(*args, **kwargs) in the pool (with an open connection for database pools)."""
        loop = asyncio.get_running_loop()
        job = functools.partial(_in_connection if self.database else _plain, fn, *args, **kwargs)
        with self._lock:
            self.queued += 1
        dequeued = [False]  # set once, by whichever comes first: the worker or a cancellation
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self.executor, self._start, job, dequeued)
        finally:
            self._dequeue(dequeued)
            if self.observe_job is not None:
                self.observe_job(time.perf_counter() - started)

    def _start(self, job: Callable[[], T], dequeued: list[bool]) -> T:
        self._dequeue(dequeued)
        return job()

    def _dequeue(self, dequeued: list[bool]) -> None:
        with self._lock:
            if not dequeued[0]:
                dequeued[0] = True
                self.queued -= 1

    def shutdown(self) -> None:
        """Stops the pool after the running jobs finish; workers' connections close with them."""
        self.executor.shutdown(wait=True, cancel_futures=True)


class Batch(Generic[A, T]):
    """Calls of one blocking function that arrive together, run as one pool job.

    A pool job costs 80-150 us of CPU in thread hand-offs alone (measured on this project's
    2-core box), many times a primary-key read. Handshakes that arrive together (W1, a
    reconnect storm) and miss the session cache would each pay it; through a Batch they
    share one job. `many` gets the job's arguments as a list and returns one outcome per
    argument, in order: (True, result) or (False, the exception that item raised), so each
    caller gets its own. An exception `many` raises (the database unreachable after the
    pool's retry) fails every caller of the job.

    At most `in_flight` jobs run at once, each of at most `limit` items: calls that arrive
    while they run wait together for the next (group commit), so a storm makes few large
    jobs, and a quiet server's lone call starts its job in the iteration it was made.
    """

    def __init__(self, run: Runner, many: Callable[[list[A]], list[tuple[bool, Any]]],
                 limit: int = 64, in_flight: int = 1) -> None:
        self.run, self.many, self.limit, self.in_flight = run, many, limit, in_flight
        self._items: list[tuple[A, asyncio.Future[T]]] = []
        self._jobs: set[asyncio.Task[None]] = set()
        self.jobs = 0  # pool jobs run so far
        self.items = 0  # calls they served

    async def __call__(self, arg: A) -> T:
        """Runs the function on arg in a job and returns its result (or raises)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._items.append((arg, future))
        if len(self._jobs) < self.in_flight:  # else the running job's end starts the next
            if len(self._items) == 1:
                loop.call_soon(self._flush)
            elif len(self._items) >= self.limit:
                self._flush()
        return await future

    def _flush(self) -> None:
        while self._items and len(self._jobs) < self.in_flight:
            items, self._items = self._items[:self.limit], self._items[self.limit:]
            job = asyncio.ensure_future(self._execute(items))
            self._jobs.add(job)
            job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[None]) -> None:
        self._jobs.discard(job)
        self._flush()  # the calls that arrived meanwhile, together

    async def _execute(self, items: list[tuple[A, asyncio.Future[T]]]) -> None:
        self.jobs += 1
        self.items += len(items)
        try:
            outcomes = await self.run(self.many, [arg for arg, _ in items])
        except Exception as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (ok, value) in zip(items, outcomes, strict=True):
            if future.done():  # its caller went away (cancelled)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _lower_priority(nice: int) -> None:
    """Lowers this worker thread's CPU priority, so it yields to the IOLoop thread (Linux)."""
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except (AttributeError, OSError):
            pass


def _plain(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


def _discard_connection() -> None:
    """Closes this worker's connection for good (a pooled one is not handed back)."""
    try:
        if isinstance(db.obj, PooledPostgresqlDatabase):
            db.obj.manual_close()
        else:
            db.close()
    except Exception:  # the connection is already broken; its next job opens a fresh one
        pass


def _is_locked(exc: Exception) -> bool:
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def _in_connection(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs fn with this worker's connection; a dropped connection is retried once.

    A dropped PostgreSQL connection (a server restart, an idle connection cut by a proxy)
    fails the first statement; the job's transaction rolled back with it, so it runs again
    on a fresh connection. If that fails too the database is unavailable (503). SQLite's
    "database is locked" after the busy timeout is a 503 too, never a 500.
    """
    for attempt in (1, 2):
        try:
            if db.is_closed():
                db.connect()
            return fn(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            _discard_connection()
            if _is_locked(exc):
                raise DatabaseBusy("the database is busy; try again shortly", 1) from exc
            if isinstance(db.obj, peewee.SqliteDatabase):
                raise
            if attempt == 2:
                raise DatabaseUnavailable() from exc
    raise AssertionError("unreachable")
