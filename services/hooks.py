"""Permission hooks: the application allows, denies or rewrites connects, subscribes and
publishes before the server acts (--hook-url, --hooks).

Each enabled hook POSTs `{"hook", "user", "channel"?, "data"?, "client_id", "transport",
"request_id"}` to the application and waits for `{"result": "allow"}`, `{"result": "deny",
"message"?}` or, for a publish, `{"result": "allow", "data": {...}}` (the data stored and
delivered instead). Anything else fails closed: no answer within --hook-timeout (waiting for
one of the --hook-concurrency slots included), a status other than 200, or an answer that is
not one of those. The built-in rules run first, in the caller; a hook can only narrow them.
Every transport (the WebSocket, server-sent events) calls the same three methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from config import HOOK_NAMES
from hub.events import dumps
from services import jsonlimits
from services.errors import HookDenied, HookUnavailable
from services.hookclient import Buckets, Failures, HookClient, HookRequestFailed, HookTimeout

__all__ = ["Hooks", "Caller", "HookUser", "RESULTS"]

log = logging.getLogger("hooks")

# How a hook call ended: the metric's `result` label.
RESULTS = ("allow", "rewrite", "deny", "timeout", "busy", "error")
DENIED = "denied by the application"
UNAVAILABLE = "the application could not decide now; retry later"


class Caller(Protocol):
    """Who the hook asks about (services.principal.Principal is one)."""

    id: int
    name: str
    role: str
    external_id: str | None


@dataclass(frozen=True, slots=True)
class HookUser:
    """The user of an open connection, as the hooks describe it."""

    id: int
    name: str
    role: str
    external_id: str | None = None


class Hooks:
    """Asks the application before a connect, subscribe or publish; one per application."""

    def __init__(self, client: HookClient | None, url: str, hooks: tuple[str, ...],
                 timeout: float, concurrency: int) -> None:
        self.client = client
        self.url = url
        self.enabled = frozenset(hooks) if url and client is not None else frozenset()
        self.timeout = timeout
        # Requests in flight at once; the rest wait for a slot within their timeout.
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.in_flight = 0
        # Plain numbers, read by services/hookmetrics.py at scrape time.
        self.calls: dict[tuple[str, str], int] = {}
        self.latency = {hook: Buckets() for hook in HOOK_NAMES}
        self.failures = Failures(log)

    def wants(self, hook: str) -> bool:
        """Tells whether the application is asked before `hook` (connect, subscribe, publish)."""
        return hook in self.enabled

    async def connect(self, caller: Caller, client_id: str | None, transport: str) -> None:
        """Asks whether caller may open a connection; raises HookDenied or HookUnavailable."""
        if "connect" in self.enabled:
            await self._ask("connect", caller, client_id, transport, {})

    async def subscribe(self, caller: Caller, channel: str, client_id: str | None,
                        transport: str) -> None:
        """Asks whether caller may subscribe to channel; raises HookDenied or HookUnavailable."""
        if "subscribe" in self.enabled:
            await self._ask("subscribe", caller, client_id, transport, {"channel": channel})

    async def publish(self, caller: Caller, channel: str, data: Any, client_id: str | None,
                      transport: str) -> Any:
        """Asks whether caller may publish data to channel; returns the data to publish (the
        application's replacement, if it gave one). Raises HookDenied or HookUnavailable."""
        if "publish" not in self.enabled:
            return data
        answer = await self._ask("publish", caller, client_id, transport,
                                 {"channel": channel, "data": data})
        return answer.get("data", data)

    async def _ask(self, hook: str, caller: Caller, client_id: str | None, transport: str,
                   fields: dict[str, Any]) -> dict[str, Any]:
        """POSTs one hook request and returns the allowing answer."""
        assert self.client is not None
        user: dict[str, Any] = {"id": caller.id, "name": caller.name, "role": caller.role}
        if caller.external_id is not None:
            user["external_id"] = caller.external_id
        request_id = uuid.uuid4().hex
        body = dumps({"hook": hook, "user": user, **fields, "client_id": client_id,
                      "transport": transport, "request_id": request_id}).encode()
        started = time.perf_counter()
        answer: dict[str, Any] = {}
        waited = True  # still waiting for a slot (the timeout then means: too busy)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.slots:
                    waited = False
                    self.in_flight += 1
                    # libcurl's own timeout ends the request with the call, so no request
                    # outlives its slot: the application never has more than the slots.
                    left = max(0.001, self.timeout - (time.perf_counter() - started))
                    try:
                        status, text = await self.client.post(self.url, body, left)
                    finally:
                        self.in_flight -= 1
            result, answer, cause = _decide(hook, status, text)
        except (TimeoutError, HookTimeout):
            result = "busy" if waited else "timeout"
            cause = (f"all {self.concurrency} slots (--hook-concurrency) busy for "
                     f"{self.timeout:g} s" if waited else f"no answer within {self.timeout:g} s")
        except HookRequestFailed as exc:
            result, cause = "error", f"request failed ({exc})"
        self.latency[hook].observe(time.perf_counter() - started)
        self.calls[(hook, result)] = self.calls.get((hook, result), 0) + 1
        if result == "deny":
            raise HookDenied(answer["message"])
        if cause:
            self.failures(cause, "%s hook failed closed: %s (request %s to %s)", hook, cause,
                          request_id, self.url)
            raise HookUnavailable(UNAVAILABLE)
        return answer


def _decide(hook: str, status: int, text: bytes) -> tuple[str, dict[str, Any], str]:
    """Returns (result, answer, cause of failure or "") for the application's response."""
    if status != 200:
        return "error", {}, f"answered HTTP {status}"
    try:
        answer = jsonlimits.loads(text)
    except ValueError:
        return "error", {}, "answered with something that is not JSON"
    verdict = answer.get("result") if isinstance(answer, dict) else None
    if verdict == "deny":
        message = answer.get("message")
        text_ = message.strip()[:500] if isinstance(message, str) and message.strip() else ""
        return "deny", {"message": text_ or DENIED}, ""
    if verdict != "allow":
        return "error", {}, 'answered without "result": "allow" or "deny"'
    if "data" not in answer or hook != "publish":
        return "allow", {}, ""
    if not isinstance(answer["data"], dict):
        return "error", {}, 'answered with "data" that is not a JSON object'
    return "rewrite", {"data": answer["data"]}, ""
