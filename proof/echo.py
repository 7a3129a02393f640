"""An echo socket on the server's real WebSocket stack, served for the conformance run only.

The application is app.py's (make_context, make_app's EdgeApplication with every production
route) plus one route, /echo, which EdgeServer's upgrade lane serves, run by main.py's own
serve(). Its handler is the /ws handler (handlers/ws.py EventSocketHandler): the same
prepare() (connect limit, origin, token, session), StrictProtocol with its frame reader and
close checks, the permessage-deflate negotiation, the shared heartbeat, the hub's registry
and its write path (HubSocket.write_frame: a direct send, or the stream's queue). It only
sends no welcome, and echoes each message, framed and deflated as the hub frames an event,
instead of handling it as a request. No module of the server imports this package, so the
production route table never has /echo (tests/test_conformance.py checks both).

`python -m proof.echo [main.py's options]` serves it; proof/conformance.py runs it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from typing import Any

from tornado.web import Application

import main
from app import make_app
from config import ConfigError, Settings, parse_args
from context import Context
from handlers.ws import EventSocketHandler
from hub import deflate
from hub.events import BINARY, DEFLATE, JSON, TEXT, frame, window_bits
from services.principal import Principal

__all__ = ["EchoSocketHandler", "echo_frame", "echo_route", "make_echo_app", "echo_settings",
           "PATH", "MAX_MESSAGE_SIZE"]

PATH = "/echo"
# Group 9 of the cases sends messages of up to 16 MiB, where the contract closes /ws with 1009
# from 64 KiB (tests/test_ws_inbound.py proves that close); the echo route takes them whole.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024


def echo_frame(message: str | bytes, variant: int) -> bytes:
    """Returns the frame that echoes message to a connection of the hub's wire variant: text
    or binary as it came, compressed whatever its size when the variant deflates (with the
    window the hub uses for it).

    The hub sends events under deflate.THRESHOLD bytes uncompressed (RSV1 clear), which RFC
    7692 allows per message; kosoku 0.1.0 hands such a message to the 12.x and 13.x cases as
    text they cannot hash, an error of the runner rather than a verdict on the server.
    """
    if isinstance(message, str):
        payload, opcode = message.encode("utf-8"), TEXT
    else:
        payload, opcode = message, BINARY
    if variant & DEFLATE:
        return frame(deflate.deflate_message(payload, window_bits(variant)), opcode,
                     compressed=True)
    return frame(payload, opcode)


class EchoSocketHandler(EventSocketHandler):
    """GET /echo: the /ws socket, authenticated and registered the same way, echoing."""

    def greet(self, caller: Principal) -> None:
        """Sends nothing: a conformance case expects only the echoes of what it sent."""

    async def on_message(self, message: str | bytes) -> None:
        # The queued bytes of a large echo are not held against the hub's slow-consumer
        # limits, which apply to its fan-out: a case reads its echo whole before it goes on.
        client = self.client
        self.write_frame(echo_frame(message, client.variant if client is not None else JSON))


def echo_route(ctx: Context) -> tuple[str, type, dict[str, Any]]:
    """Returns the echo route, which the server's upgrade lane serves."""
    return (PATH, EchoSocketHandler, {"ctx": ctx})


def make_echo_app(ctx: Context) -> Application:
    """Returns app.py's application with the echo route added in front of its catch-all."""
    app = make_app(ctx)
    route = echo_route(ctx)
    app.add_handlers(r".*$", [route])
    ctx.metrics.set_routes([route])
    return app


def echo_settings(settings: Settings) -> Settings:
    """Returns settings for the conformance run: compression accepted, messages up to 16 MiB,
    a connect limit one address opening a socket per case stays under, and a token that
    outlives the longest run."""
    return replace(settings, websocket_compression=True, max_message_size=MAX_MESSAGE_SIZE,
                   ws_connect_rate=1_000_000, access_token_ttl=max(settings.access_token_ttl,
                                                                   4 * 3600))


def run(argv: list[str]) -> int:
    """Serves the echo application with main.py's options until SIGTERM or SIGINT."""
    try:
        _, settings, _ = parse_args(argv)
        settings = echo_settings(settings)
        main.configure_logging(settings.debug, settings.log_format)
        sockets, metrics_sockets = main.preflight(settings)
        main.open_database(settings)
    except ConfigError as exc:
        print(f"proof.echo: error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(main.serve(settings, sockets, metrics_sockets, build=make_echo_app,
                           route=echo_route))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
