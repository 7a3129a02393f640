"""Peer: the naive Tornado baseline, `write_message(dict)` per client (JSON + frame each time).
/ws accepts any token; /control fans each alert out and replies "ok <n>". No compression."""

from __future__ import annotations

import argparse
import asyncio
import json

import tornado.web
from peer_cli import WELCOME, arguments, stop_event
from tornado.httpserver import HTTPServer
from tornado.websocket import WebSocketClosedError, WebSocketHandler

CLIENTS: set[WebSocketHandler] = set()


class EventSocket(WebSocketHandler):
    def open(self) -> None:
        CLIENTS.add(self)
        self.write_message(WELCOME)

    def on_close(self) -> None:
        CLIENTS.discard(self)


class Control(WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        event = json.loads(message)
        for client in list(CLIENTS):
            try:
                client.write_message(event)
            except WebSocketClosedError:
                CLIENTS.discard(client)
        self.write_message(f"ok {len(CLIENTS)}")


async def main(args: argparse.Namespace) -> None:
    """Serves until SIGTERM, SIGINT or --max-seconds."""
    server = HTTPServer(tornado.web.Application([(r"/ws", EventSocket), (r"/control", Control)],
        websocket_ping_interval=args.ping_interval, websocket_ping_timeout=args.ping_timeout))
    server.listen(args.port, args.address, backlog=1024)
    await stop_event(args.max_seconds).wait()
    server.stop()


if __name__ == "__main__":
    asyncio.run(main(arguments("naive Tornado write_message peer").parse_args()))
