"""Link: the client's socket, opened again after every drop until the client ends.

One task runs the loop: open `/ws` (with the feed's `since`/`epoch` once known), read frames
into the Receiver until the socket closes, decide (reconnect, renew the token first, or end
with Revoked/AuthError), wait a random delay (Backoff) and open again. A second task per
socket swaps in a fresh access token before the current one expires (`auth.refresh`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from .backoff import Backoff
from .errors import (
    ApiError,
    AuthError,
    ConnectError,
    ConnectionLost,
    EventsClientError,
    RequestError,
    RequestTimeout,
    Revoked,
)
from .urls import ws_url

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Link"]

log = logging.getLogger("events_client")

TOKEN_EXPIRED = "token expired"  # the one 1008 close a new token cures (docs/websocket.md)
MAX_MESSAGE = 16 * 2**20  # a history reply (100 messages of up to 16 KiB) exceeds 1 MiB
RETRY_REFRESH = 1.0  # seconds between attempts to renew a token the server could not renew


class Link:
    """Opens, serves and reopens the client's socket (see the module docstring)."""

    def __init__(self, client: Client, backoff: Backoff, open_timeout: float,
                 ws_options: dict[str, Any]) -> None:
        self.client = client
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.ws_options = ws_options
        # The welcomed socket requests go out on; None while (re)connecting.
        self.live: ClientConnection | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._socket_token = ""  # the access token the current socket runs on
        self._refusals = 0  # 401s in a row at the upgrade

    async def start(self) -> None:
        """Starts the loop and waits for the first welcome (or the first failure)."""
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="events_client.link")
        await self._first

    async def stop(self) -> None:
        """Closes the socket cleanly and ends the loop."""
        if self._first is not None and not self._first.done():
            self._first.set_exception(ConnectionLost("client closed"))
        ws = self._ws
        if ws is not None:
            try:
                await ws.close(1000, "client closed")
            except Exception as exc:  # the socket was already failing: nothing left to close
                log.debug("close: %s", exc)
        for task in (self._refresher, self._task):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.live = None

    def welcomed(self, ws: ClientConnection) -> None:
        """Marks a socket live (its welcome arrived) and starts renewing its token."""
        self.live = ws
        self._refusals = 0
        self.client.ready.set()
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        self._refresher = asyncio.create_task(self._keep_fresh(ws), name="events_client.token")

    @property
    def _started(self) -> bool:
        return self._first is not None and self._first.done()

    def _end(self, exc: BaseException) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_exception(exc)
        self.client.fail(exc)

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0  # attempts in a row that did not get a welcome
        try:
            while not self.client.closed:
                wait_at_least = 0.0
                welcomed = False
                try:
                    ws = await self._open()
                except InvalidStatus as exc:
                    wait_at_least = await self._refused(exc)
                except (OSError, asyncio.TimeoutError, TimeoutError, WebSocketException) as exc:
                    if not self._started:
                        raise ConnectError(f"cannot connect to {self.client.url}: {exc}") from exc
                    log.info("connecting failed: %s", exc)
                else:
                    welcomed = await self._serve(ws)
                    if self.client.closed:
                        return
                    await self._after_close(ws)
                if welcomed:
                    failures = 0
                else:
                    failures += 1
                    limit = self.backoff.max_attempts
                    if limit is not None and failures >= limit:
                        raise ConnectError(f"gave up after {failures} failed attempts in a row")
                delay = max(wait_at_least, self.backoff.delay(failures))
                log.info("reconnecting in %.2f s (attempt %d)", delay, failures + 1)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, (Revoked, AuthError, ConnectError)):
                log.exception("the connection loop failed")
            self._end(exc)

    async def _open(self) -> ClientConnection:
        tokens = self.client.tokens
        await tokens.ensure_fresh()
        self._socket_token = tokens.access_token
        url = ws_url(self.client.url, self.client.receiver.streams.feed.resume())
        subprotocol = self.client.wire.subprotocol
        options: dict[str, Any] = {"open_timeout": self.open_timeout, "max_size": MAX_MESSAGE,
                                   **self.ws_options}
        ws = await ws_connect(
            url, additional_headers={"Authorization": f"Bearer {self._socket_token}"},
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None, **options)
        if subprotocol and ws.subprotocol != subprotocol:
            await ws.close()
            raise ConnectError(f"the server did not agree to speak {subprotocol}")
        return ws

    async def _serve(self, ws: ClientConnection) -> bool:
        """Reads frames until the socket closes; returns whether it was welcomed."""
        self._ws = ws
        try:
            async for raw in ws:
                await self.client.receiver.frame(ws, raw)
        except ConnectionClosed:
            pass
        finally:
            welcomed = self.live is ws
            self.live = self._ws = None
            if self._refresher is not None:
                self._refresher.cancel()
                self._refresher = None
            if not self.client.closed and self.client.failure is None:
                self.client.ready.clear()
            self.client.receiver.dropped(_revocation(ws) or ConnectionLost("the connection closed"))
        return welcomed

    async def _after_close(self, ws: ClientConnection) -> None:
        """Ends the client on a revocation; renews the token after a `token expired`."""
        code, reason = ws.close_code, ws.close_reason or ""
        if not self._started:
            raise ConnectError(f"closed before the welcome: {code} {reason}".rstrip())
        revoked = _revocation(ws)
        if revoked is not None:
            raise revoked
        if code == 1008 and await self._renew(self._socket_token) is False:
            raise AuthError(401, "unauthorized", "token expired and no refresh token to renew it")
        log.info("connection closed: %s %s", code, reason)

    async def _refused(self, exc: InvalidStatus) -> float:
        """Handles a refused upgrade; returns the least delay before the next attempt."""
        response = exc.response
        status = response.status_code
        try:
            error = json.loads(response.body or b"{}").get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        code, message = str(error.get("code", "http_error")), str(error.get("message", ""))
        if status == 401:
            self._refusals += 1
            if self._refusals <= 2 and await self._renew(self._socket_token) is not False:
                return 0.0
            raise AuthError(401, code, message)
        if status == 403:
            raise AuthError(403, code, message)
        if not self._started:
            raise ConnectError(f"the upgrade was refused: HTTP {status} {message}".rstrip())
        log.info("the upgrade was refused: HTTP %s %s", status, message)
        try:
            return float(response.headers.get("Retry-After", 0))
        except ValueError:
            return 0.0

    async def _renew(self, stale: str) -> bool | None:
        """Renews the access token: True when renewed, False when there is no way to, None
        when the server could not answer now (AuthError when it refused)."""
        try:
            return await self.client.tokens.renew(stale)
        except AuthError:
            raise
        except (ApiError, ConnectError) as exc:
            log.info("could not renew the token now: %s", exc)
            return None

    async def _keep_fresh(self, ws: ClientConnection) -> None:
        """Sends the socket a fresh token (`auth.refresh`) before the one it runs on expires."""
        tokens = self.client.tokens
        while self.live is ws:
            wait = tokens.refresh_in(self._socket_token)
            if wait is None or not tokens.renewable:
                return
            await asyncio.sleep(max(0.0, wait))
            try:
                renewed = await self._renew(self._socket_token)
            except AuthError as exc:
                # The socket lives until its token expires; that close then ends the client.
                log.warning("the refresh token was refused: %s", exc)
                return
            if renewed is None:
                await asyncio.sleep(RETRY_REFRESH)
                continue
            token = tokens.access_token
            try:
                await self.client.request("auth.refresh", {"token": token})
            except (RequestError, RequestTimeout) as exc:
                log.info("auth.refresh failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_REFRESH)
                continue
            except EventsClientError:
                return  # the socket closed (or the client ended): the loop takes it from here
            self._socket_token = token


def _revocation(ws: ClientConnection) -> Revoked | None:
    """Returns Revoked when the server closed the socket with 1008 for good (any reason but
    `token expired`, which a new token cures)."""
    if ws.close_code == 1008 and ws.close_reason != TOKEN_EXPIRED:
        return Revoked(ws.close_reason or "")
    return None
