"""Requests in flight on the socket: ids, their futures and what to do with the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RequestError

__all__ = ["Requests", "MAX_REQUEST_ID"]

MAX_REQUEST_ID = 2**31  # ids run 1..2^31 (docs/websocket.md) and wrap around


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]] | None
    on_reply: Callable[[dict[str, Any]], None] | None
    on_error: Callable[[str, str], None] | None


class Requests:
    """Matches answers (`reply`, `error`, `auth.refreshed` with an id) to requests."""

    def __init__(self) -> None:
        self._next = 0
        self._pending: dict[int, _Pending] = {}

    def open(self, *, future: bool = True,
             on_reply: Callable[[dict[str, Any]], None] | None = None,
             on_error: Callable[[str, str], None] | None = None
             ) -> tuple[int, asyncio.Future[dict[str, Any]] | None]:
        """Registers a request; returns its id and, if asked for, the future of its answer.

        The callbacks run in the reader, before any later frame is read: a subscribe reply
        sets the room's position before its replayed events are looked at.
        """
        while True:
            self._next = self._next % MAX_REQUEST_ID + 1
            if self._next not in self._pending:
                break
        fut = asyncio.get_running_loop().create_future() if future else None
        self._pending[self._next] = _Pending(fut, on_reply, on_error)
        return self._next, fut

    def settle(self, frame: dict[str, Any]) -> bool:
        """Delivers an answer to its request; False when no request has that id."""
        pending = self._pending.pop(frame.get("id"), None)  # type: ignore[arg-type]
        if pending is None:
            return False
        data = frame.get("data") or {}
        if frame.get("type") == "error":
            code, message = str(data.get("code", "error")), str(data.get("message", ""))
            if pending.on_error is not None:
                pending.on_error(code, message)
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(RequestError(code, message))
        else:
            if pending.on_reply is not None:
                pending.on_reply(data)
            if pending.future is not None and not pending.future.done():
                pending.future.set_result(data)
        return True

    def forget(self, request_id: int) -> None:
        """Drops a request nobody waits for any more (timed out, never sent)."""
        self._pending.pop(request_id, None)

    def fail_all(self, exc: BaseException) -> None:
        """Fails every request in flight (the socket closed): their answers will not come."""
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(exc)
