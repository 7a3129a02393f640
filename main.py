"""Command line: `python main.py` serves; `python main.py create-admin ...` manages admins."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import peewee
import tornado.httpserver
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets
from tornado.web import Application

from app import make_app, make_context, make_metrics_app, upgrade_route
from auth.jwt import MIN_SECRET, load_or_create_secret, stored_secret
from config import ConfigError, Settings, parse_args
from context import Context
from edge import internals
from edge.housekeeper import Housekeeper, return_large_blocks
from edge.log_format import JsonFormatter, TextFormatter
from edge.loop import LoopUnavailable, loop_factory
from edge.loop import describe as loop_name
from edge.server import EdgeServer
from edge.startup import check_directory, listen
from edge.supervisor import Supervisor, without_workers, worker_count
from hub.disconnect import SHUTTING_DOWN
from models.db import init_db
from models.startup import database_problem, describe, sqlite_directory
from services.rooms import ensure_lobby

log = logging.getLogger("server")

# Tornado listens with a backlog of 128: a restarted server's clients all reconnecting within a
# second or two overflow it and wait out SYN retransmits (1, 3, 7 s). The kernel clamps this
# to net.core.somaxconn.
LISTEN_BACKLOG = 4096
SHUTDOWN_GRACE_SECONDS = 3.0
STOP_TIMEOUT_SECONDS = 10.0
GC_THRESHOLD_YOUNG = 50_000  # CPython's default is 700 allocations


def tune_gc() -> None:
    """Makes full garbage collections rare, since each one scans every connection's objects.

    With CPython's default thresholds a server ramping up to 10k sockets runs a full
    collection each time its heap grows by a quarter: pauses of hundreds of milliseconds in
    which no event is delivered. Start-up objects are frozen (never scanned again) and the
    young-generation threshold is raised, so far fewer objects are promoted and full
    collections come seldom. Cyclic garbage is still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_YOUNG, 20, 100)


def configure_logging(debug: bool, log_format: str = "text") -> None:
    """Sets up logging to stderr: timestamped text lines, or one JSON object per line.

    Neither format shows the calling function, thread or process, so records do not collect
    them (the logging HOWTO's "Optimization": every handshake writes an access-log line).
    """
    logging._srcfile = None  # type: ignore[attr-defined]  # the documented switch for callers
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler],
                        force=True)


def check_storage(settings: Settings, secret: bool = True) -> None:
    """Checks the data directory, a stored secret and the database, writing no file; raises
    ConfigError naming the option to change."""
    if secret and not settings.jwt_secret:
        check_directory(settings.data_dir, "--data-dir")
        stored = stored_secret(settings.data_dir)
        if stored is not None and len(stored) < MIN_SECRET:
            path = os.path.join(settings.data_dir, "jwt_secret")
            raise ConfigError(f"the secret in {path} is {len(stored)} characters, fewer than "
                              f"{MIN_SECRET}: replace the file or set --jwt-secret")
    url = settings.effective_database_url
    directory = sqlite_directory(url)
    if directory is not None:
        check_directory(directory, "--database-url" if settings.database_url else "--data-dir")
    problem = database_problem(url)
    if problem is not None:
        raise ConfigError(f"cannot connect to the database {describe(url)} ({problem}): "
                          "check --database-url")


def open_database(settings: Settings) -> None:
    """Opens the database and creates missing tables (after every check has passed)."""
    url = settings.effective_database_url
    try:
        init_db(url)
        ensure_lobby()
    except peewee.DatabaseError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot open the database {describe(url)} ({reason}): "
                          "check --database-url") from None


def preflight(settings: Settings) -> tuple[list[socket.socket], list[socket.socket]]:
    """Binds the listening sockets, then checks storage; returns (server, metrics) sockets.

    Nothing is written before this returns: a port in use, an unusable data directory or an
    unreachable database ends the start with one line and no secret or database file.
    """
    # A worker shares the port with its siblings: the kernel spreads connections over them.
    sockets = listen(settings.port, settings.address, "--port", LISTEN_BACKLOG,
                     reuse_port=bool(settings.worker))
    metrics: list[socket.socket] = []
    try:
        if settings.metrics and settings.metrics_port:
            metrics = listen(settings.metrics_port, settings.address, "--metrics-port", 128,
                             reuse_port=bool(settings.worker))
        check_storage(settings)
    except ConfigError:
        for sock in sockets + metrics:
            sock.close()
        raise
    return sockets, metrics


async def serve(settings: Settings, sockets: list[socket.socket],
                metrics_sockets: list[socket.socket],
                build: Callable[[Context], Application] = make_app,
                route: Callable[[Context], tuple] = upgrade_route) -> None:
    """Runs the server on bound sockets until SIGTERM or SIGINT, then closes every socket
    with 1001 and exits.

    `build` makes the application and `route` names the route of its upgrade lane (app.py's
    by default; the conformance run's echo application, proof/echo.py, passes its own).
    """
    internals.check()
    ctx = make_context(settings)  # writes the generated secret, if there is none yet
    if settings.worker:  # its own metrics on loopback, for the sibling a scrape reaches
        own_sockets = bind_sockets(0, "127.0.0.1")
        tornado.httpserver.HTTPServer(make_metrics_app(ctx, internal=True)).add_sockets(
            own_sockets)
        own_port = own_sockets[0].getsockname()[1]
        ctx.stats.extra = {"worker": settings.worker, "host": socket.gethostname(),
                           "port": settings.port, "pid": os.getpid(),
                           "metrics_url": f"http://127.0.0.1:{own_port}/metrics"}
    await ctx.broker.start()
    await ctx.start()  # streams restored, unpublished outbox rows published: then serve
    ctx.messages.start()
    app = build(ctx)
    server = EdgeServer(app, settings=settings, upgrade_route=route(ctx))
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    metrics_server = None
    if metrics_sockets:
        metrics_server = tornado.httpserver.HTTPServer(make_metrics_app(ctx))
        metrics_server.add_sockets(metrics_sockets)
        log.info("metrics on http://%s:%d/metrics", settings.address, settings.metrics_port)
    tune_gc()
    return_large_blocks()
    ctx.health.start()
    ctx.loop_lag.start()
    housekeeper = Housekeeper(server)
    housekeeper.start()
    log.info("listening on http://%s:%d (database %s, %s loop)", settings.address, port,
             settings.effective_database_url.split("@")[-1], loop_name(asyncio.get_running_loop()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    housekeeper.stop()
    if metrics_server is not None:
        metrics_server.stop()
    await shutdown(server, ctx)


async def shutdown(server: tornado.httpserver.HTTPServer, ctx: Context) -> None:
    """Stops accepting, closes every WebSocket with 1001 and waits briefly for them to go."""
    log.info("shutting down: closing %d connection(s)", len(ctx.hub.clients))
    server.stop()
    ctx.health.stop()
    ctx.loop_lag.stop()
    ctx.hub.close_all(SHUTTING_DOWN)
    deadline = IOLoop.current().time() + SHUTDOWN_GRACE_SECONDS
    # Give close frames a moment to flush before the process exits.
    await asyncio.sleep(0.1)
    while IOLoop.current().time() < deadline:
        try:
            await asyncio.wait_for(server.close_all_connections(), 0.5)
            break
        except TimeoutError:
            continue
    try:  # marks, room messages, then each stream's position, marked clean
        await asyncio.wait_for(ctx.stop(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.error("could not store every event in time: the next start treats this as a crash")
    await ctx.broker.close()
    if ctx.redis is not None:
        await ctx.redis.aclose()
    ctx.shutdown_pools()
    log.info("stopped")


def admin_password(args: argparse.Namespace) -> str:
    """Returns create-admin's password: --password, else ADMIN_PASSWORD, else asked twice at a
    terminal (never echoed), so it need not appear on the command line."""
    if args.password is not None:
        return args.password
    if not sys.stdin.isatty():
        raise ConfigError("create-admin needs a password: set ADMIN_PASSWORD, pass --password, "
                          "or run it in a terminal to be asked")
    try:
        first = getpass.getpass(f"Password for {args.email}: ")
        second = getpass.getpass("Repeat the password: ")
    except (EOFError, KeyboardInterrupt):
        raise ConfigError("create-admin: no password given; nothing changed") from None
    if first != second:
        raise ConfigError("create-admin: the two passwords differ; nothing changed")
    return first


def create_admin(settings: Settings, email: str, password: str, name: str, role: str) -> int:
    """Creates an admin or promotes an existing user; returns the exit status."""
    from services.errors import ANSWERED
    from services.users import ensure_admin

    open_database(settings)
    try:
        user, outcome = ensure_admin(email, password, name, role)
    except ANSWERED as exc:
        print(f"create-admin: {exc.message}", file=sys.stderr)
        return 2
    email, user_id, role = user["email"], user["id"], user["role"]
    if outcome == "unchanged":
        print(f"{email} (id {user_id}) is already {role}; nothing changed")
    else:
        print(f"{outcome} {email} (id {user_id}) as {role}")
    return 0


def api_key(settings: Settings, args: Any) -> int:
    """api-key create|list|revoke: manages server API keys; returns the exit status."""
    from services import apikeys
    from services.errors import ANSWERED

    init_db(settings.effective_database_url)
    try:
        if args.key_command == "create":
            made = apikeys.blocking(apikeys.create_key, args.name, args.scopes)
            if args.json:
                print(json.dumps(made))
            else:
                print(f"created API key {made['id']} ({made['name']}; scopes "
                      f"{','.join(made['scopes'])}):\n{made['key']}\n"
                      "It is shown this once: store it now.")
            return 0
        if args.key_command == "list":
            rows = apikeys.blocking(apikeys.list_keys)
            if args.json:
                print(json.dumps(rows))
            else:
                print(_key_table(rows))
            return 0
        if not apikeys.blocking(apikeys.revoke_key, args.id):
            print(f"api-key: no API key with id {args.id}", file=sys.stderr)
            return 1
        print(f"revoked API key {args.id}")
        return 0
    except ANSWERED as exc:
        print(f"api-key: {exc.message}", file=sys.stderr)
        return 2


def _key_table(rows: list[dict[str, Any]]) -> str:
    """Formats listed keys as aligned columns."""
    head = ("ID", "NAME", "SCOPES", "CREATED", "LAST USED")
    lines = [head] + [(str(r["id"]), r["name"], ",".join(r["scopes"]), r["created_at"],
                       r["last_used_at"] or "never") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in lines)


def main(argv: list[str] | None = None, prog: str = "main.py") -> int:
    """Parses the command line and runs the chosen command; returns the exit status (2 for
    a setting the server cannot use, with one line on stderr saying which)."""
    try:
        command, settings, args = parse_args(sys.argv[1:] if argv is None else argv, prog=prog)
        configure_logging(settings.debug, settings.log_format)
        if command == "create-admin":
            check_storage(settings, secret=False)
            password = admin_password(args)
            return create_admin(settings, args.email, password, args.name, args.role)
        if command == "api-key":
            check_storage(settings, secret=False)
            return api_key(settings, args)
        factory = event_loop(settings)
        sockets, metrics_sockets = preflight(settings)
        open_database(settings)
        if settings.workers != 1 and not settings.worker:
            return supervise(settings, sockets + metrics_sockets, argv)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(settings, sockets, metrics_sockets))
    return 0


def supervise(settings: Settings, checked: list[socket.socket], argv: list[str] | None) -> int:
    """Runs --workers: the checks have passed on sockets the workers will bind themselves
    (closed here), the secret is made once for all of them, then the supervisor runs."""
    for sock in checked:
        sock.close()
    if not settings.jwt_secret:
        load_or_create_secret(settings.data_dir)  # one secret: every worker signs alike
    args = without_workers(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, os.path.abspath(__file__), *args]
    return Supervisor(command, worker_count(settings.workers)).run()


def event_loop(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop]:
    """Returns the factory of the loop --loop asks for (ConfigError if it cannot be had)."""
    try:
        return loop_factory(settings.loop)
    except LoopUnavailable as exc:
        raise ConfigError(str(exc)) from None


if __name__ == "__main__":
    sys.exit(main())
