"""What the client's tests share: REST calls as a test needs them, and an event collector."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from liveserver import unique

import events_client
from events_client import RECOVERY, Backoff, Event

__all__ = ["FAST", "call", "new_user", "new_room", "broadcast", "Collector", "entry"]

# Reconnect quickly in tests (the default starts at 0.5 s and grows to 30 s).
FAST = Backoff(initial=0.05, maximum=0.3)


async def call(url: str, method: str, path: str, token: str | None = None,
               body: Any = None) -> tuple[int, Any]:
    """Sends one JSON request; returns (status, parsed body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.request(method, url + path, json=body, headers=headers)
    return response.status_code, response.json() if response.content else None


async def new_user(url: str, password: str = "password123") -> events_client.Tokens:
    """Registers a fresh user; returns its tokens (with `user`)."""
    name = unique("u")
    return await events_client.register(url, name, f"{name}@example.com", password)


async def new_room(url: str, token: str, private: bool = False) -> str:
    """Creates a room owned by the token's user; returns its channel."""
    name = unique("r")
    status, body = await call(url, "POST", "/api/v1/rooms", token,
                              {"name": name, "private": private})
    assert status == 201, body
    return f"room:{name}"


async def broadcast(url: str, token: str, message: str, **extra: Any) -> None:
    """Sends a system.alert to everyone (POST /ws/broadcast as an admin)."""
    status, body = await call(url, "POST", "/ws/broadcast", token, {"message": message, **extra})
    assert status == 200, body


class Collector:
    """Reads a client's events() in the background and lets a test await what arrives."""

    def __init__(self, client: events_client.Client) -> None:
        self.client = client
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.client.events():
                self.events.append(event)
                async with self._changed:
                    self._changed.notify_all()
        except Exception as exc:
            self.error = exc
        async with self._changed:
            self._changed.notify_all()

    async def until(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Waits until condition() holds, failing with what arrived if it does not."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: condition() or self._task.done()), timeout)
            except asyncio.TimeoutError:
                pass
        assert condition(), f"never reached; error={self.error!r}; got {self.summary()}"

    async def finished(self, timeout: float = 20.0) -> BaseException | None:
        """Waits for events() to end; returns what it raised (None: it ended normally)."""
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.error

    def alerts(self, tag: str) -> list[int]:
        """The numbers of the `tag:N` alerts received, in order."""
        prefix = tag + ":"
        return [int(e.data["message"][len(prefix):]) for e in self.events
                if e.type == "system.alert" and e.data["message"].startswith(prefix)]

    def messages(self, channel: str) -> list[int]:
        """The `n` of each channel.message received in a room, in order."""
        return [e.data["body"]["n"] for e in self.events
                if e.type == "channel.message" and e.channel == channel]

    def counts(self, tag: str, channel: str) -> tuple[int, int]:
        """How many `tag:N` alerts and how many messages of a room arrived."""
        return len(self.alerts(tag)), len(self.messages(channel))

    def recoveries(self) -> list[list[dict[str, Any]]]:
        """The streams of each recovery event, in order."""
        return [e.data["streams"] for e in self.events if e.type == RECOVERY]

    def of_type(self, kind: str) -> list[Event]:
        """The events of one type, in order."""
        return [e for e in self.events if e.type == kind]

    def summary(self) -> list[tuple[str, str | None, str | None]]:
        """(type, channel, offset) of everything received, for failure messages."""
        return [(e.type, e.channel, e.offset) for e in self.events]

    async def stop(self) -> None:
        """Stops reading."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def entry(streams: list[dict[str, Any]], channel: str | None) -> dict[str, Any]:
    """Returns one stream's entry of a recovery event (None: the feed)."""
    matches = [s for s in streams if s["channel"] == channel]
    assert len(matches) == 1, streams
    return matches[0]
