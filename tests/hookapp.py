"""A small application for the hook and webhook tests: a Tornado app on a free port that
answers permission hooks by a rule the test sets and records every request it gets.

It can be taken down (its port then refuses connections) and brought back on the same port,
answer with a chosen status, hold requests for a while, and counts how many it handles at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import tornado.httpserver
import tornado.web
from serverproc import free_port

from auth.signature import HEADER

__all__ = ["HookApp", "Received"]


class Received:
    """One request as the application got it: the parsed body, the raw bytes and headers."""

    def __init__(self, body: bytes, headers: Any, status: int, peer: Any) -> None:
        self.raw = body
        self.json: dict[str, Any] = json.loads(body)
        self.signature = headers.get(HEADER, "")
        self.status = status  # what the application answered
        self.peer = peer  # the client's (address, port): one per kept-alive connection

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Endpoint(tornado.web.RequestHandler):
    def initialize(self, app: HookApp) -> None:
        self.app = app

    async def post(self) -> None:
        app = self.app
        stream = self.request.connection.stream
        peer = stream.socket.getpeername() if stream.socket is not None else None
        app.in_flight += 1
        app.max_in_flight = max(app.max_in_flight, app.in_flight)
        try:
            if app.delay:
                await asyncio.sleep(app.delay)
            if app.gate is not None:
                await app.gate.wait()
            body = json.loads(self.request.body)
            status = app.status(body) if callable(app.status) else app.status
            got = Received(self.request.body, self.request.headers, status, peer)
            (app.hooks if "hook" in body else app.webhooks).append(got)
            self.set_status(status)
            if status == 200 and "hook" in body:
                self.write(app.answer(body))
            app.changed.set()
        finally:
            app.in_flight -= 1


class HookApp:
    """The application under the server: /hook answers permission hooks, /webhook takes
    webhooks (both paths reach the same handler)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hooks: list[Received] = []
        self.webhooks: list[Received] = []
        # The answer to a hook request (a JSON object), the status of any request (or a
        # function of its body), seconds to hold each request, and an event to hold them on.
        self.answer: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: {"result": "allow"}
        self.status: int | Callable[[dict[str, Any]], int] = 200
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.changed = asyncio.Event()
        self._server: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def start(self) -> None:
        """Listens (again) on the application's port."""
        app = tornado.web.Application([(r"/(?:hook|webhook)", _Endpoint, {"app": self})])
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.listen(self.port, "127.0.0.1")

    async def stop(self) -> None:
        """Stops listening and drops kept-alive connections: the port refuses from now on."""
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None

    def delivered(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Returns the webhook bodies answered 2xx (of one type, if given), in arrival order."""
        return [r.json for r in self.webhooks
                if r.ok and (type_ is None or r.json["type"] == type_)]

    async def wait(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Waits until condition() holds after some request arrived; fails after timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            self.changed.clear()
            left = deadline - loop.time()
            assert left > 0, "the application did not get what the test waited for"
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
