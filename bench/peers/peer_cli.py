"""What every Python peer script shares: its command line, its stop signal, its welcome (the
peers run as scripts, `python bench/peers/<name>.py`, and import this module as a sibling)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

__all__ = ["arguments", "stop_event", "WELCOME"]

WELCOME = json.dumps({"type": "connection.established",
                      "data": {"message": "Welcome to WebSocket real-time updates"},
                      "timestamp": "1970-01-01T00:00:00.000Z"})


def arguments(description: str) -> argparse.ArgumentParser:
    """Returns a parser with the options the harness passes every peer."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, default=300.0)
    parser.add_argument("--ping-timeout", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    return parser


def stop_event(max_seconds: float) -> asyncio.Event:
    """Returns an event set by SIGTERM, SIGINT or after max_seconds (a peer always exits)."""
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(max_seconds, stop.set)
    return stop
