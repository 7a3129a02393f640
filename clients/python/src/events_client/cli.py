"""The command line: `python -m events_client listen` prints events as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .client import Client, connect
from .errors import EventsClientError
from .rest import login

__all__ = ["main", "parser"]

DESCRIPTION = """Connects to the events server and prints every event it receives, one JSON
object per line ({"type", "channel", "offset", "timestamp", "data"}), flushed as it comes.
Reconnects and resumes by itself; each (re)connect prints a "recovery" line."""


def parser() -> argparse.ArgumentParser:
    """Returns the argument parser."""
    top = argparse.ArgumentParser(prog="python -m events_client")
    commands = top.add_subparsers(dest="command", required=True)
    listen = commands.add_parser("listen", help="print events as JSON lines",
                                 description=DESCRIPTION)
    listen.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    listen.add_argument("--email", help="log in with this email (with --password)")
    listen.add_argument("--password", help="password for --email (default: $EVENTS_PASSWORD)")
    listen.add_argument("--token", help="connect with this access token instead of logging in")
    listen.add_argument("--refresh-token", help="with --token: renew it with this refresh token")
    listen.add_argument("--subscribe", action="append", default=[], metavar="room:NAME",
                        help="subscribe to a room (repeatable)")
    listen.add_argument("--protocol", choices=("json", "protobuf"), default="json",
                        help="wire format (default json)")
    listen.add_argument("--count", type=int, default=0, metavar="N",
                        help="exit after printing N events (default: run until interrupted)")
    listen.add_argument("-v", "--verbose", action="store_true",
                        help="log connects and reconnects to stderr")
    return top


async def _print_events(client: Client, count: int) -> None:
    printed = 0
    async for event in client.events():
        sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        printed += 1
        if count and printed >= count:
            return


async def listen(args: argparse.Namespace) -> None:
    """Logs in (or takes a token), subscribes and prints events until told to stop."""
    token, refresh_token = args.token, args.refresh_token
    if not token:
        password = args.password or os.environ.get("EVENTS_PASSWORD", "")
        tokens = await login(args.url, args.email, password)
        token, refresh_token = tokens.access_token, tokens.refresh_token
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # no signal handlers on this platform: Ctrl-C raises KeyboardInterrupt
    async with connect(args.url, token=token, refresh_token=refresh_token,
                       protocol=args.protocol) as client:
        for channel in args.subscribe:
            await client.subscribe(channel)
        printing = asyncio.create_task(_print_events(client, args.count))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({printing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not printing.done():
            printing.cancel()
            await asyncio.gather(printing, return_exceptions=True)
        else:
            printing.result()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 done, 1 failed, 2 bad usage)."""
    top = parser()
    args = top.parse_args(argv)
    if not args.token and not args.email:
        top.error("listen needs --email and --password, or --token")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        asyncio.run(listen(args))
    except EventsClientError as exc:
        print(f"events_client: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0  # the reader went away (| head): nothing more to print
    return 0
