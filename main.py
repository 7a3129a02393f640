"""Command line: `python main.py` serves; `python main.py create-admin ...` manages admins."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable

import tornado.httpserver
from tornado.ioloop import IOLoop
from tornado.web import Application

from app import make_app, make_context, make_metrics_app, upgrade_route
from config import ConfigError, Settings, parse_args
from context import Context
from edge import internals
from edge.housekeeper import Housekeeper
from edge.log_format import JsonFormatter, TextFormatter
from edge.server import EdgeServer
from hub.disconnect import SHUTTING_DOWN
from models.db import init_db
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


async def serve(settings: Settings, build: Callable[[Context], Application] = make_app,
                route: Callable[[Context], tuple] = upgrade_route) -> None:
    """Runs the server until SIGTERM or SIGINT, then closes every socket with 1001 and exits.

    `build` makes the application and `route` names the route of its upgrade lane (app.py's
    by default; the conformance run's echo application, proof/echo.py, passes its own).
    """
    internals.check()
    init_db(settings.effective_database_url)
    ensure_lobby()
    ctx = make_context(settings)
    await ctx.broker.start()
    await ctx.start()  # streams restored, unpublished outbox rows published: then serve
    ctx.messages.start()
    app = build(ctx)
    server = EdgeServer(app, settings=settings, upgrade_route=route(ctx))
    server.listen(settings.port, settings.address, backlog=LISTEN_BACKLOG)
    metrics_server = None
    if settings.metrics and settings.metrics_port:
        metrics_server = tornado.httpserver.HTTPServer(make_metrics_app(ctx))
        metrics_server.listen(settings.metrics_port, settings.address)
        log.info("metrics on http://%s:%d/metrics", settings.address, settings.metrics_port)
    tune_gc()
    ctx.health.start()
    housekeeper = Housekeeper(server)
    housekeeper.start()
    log.info("listening on http://%s:%d (database %s)", settings.address, settings.port,
             settings.effective_database_url.split("@")[-1])
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


def create_admin(settings: Settings, email: str, password: str, name: str, role: str) -> int:
    """Creates an admin or promotes an existing user; returns the exit status."""
    from services.errors import ANSWERED
    from services.users import ensure_admin

    init_db(settings.effective_database_url)
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


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the chosen command."""
    try:
        command, settings, args = parse_args(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"main.py: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.debug, settings.log_format)
    if command == "create-admin":
        return create_admin(settings, args.email, args.password, args.name, args.role)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
