"""The access token a client runs on, renewed before it expires.

The expiry is read from the JWT's `exp` and `iat` claims without verifying the token (only the
server can). A token is renewed when a third of its lifetime is left, at most a minute before
it expires:
with a refresh token through POST /api/v1/auth/refresh (which rotates both tokens), or from
the application's `get_token` callable.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from . import rest
from .errors import ApiError, AuthError, ConnectError

__all__ = ["TokenKeeper", "TokenSource"]

# A callable returning a fresh access token, or an awaitable of one.
TokenSource = Callable[[], str | Awaitable[str]]
MAX_MARGIN = 60.0


def _margin(lifetime: float) -> float:
    """Returns how long before its expiry a token of this lifetime is renewed."""
    return min(MAX_MARGIN, max(lifetime, 0.0) / 3)


class TokenKeeper:
    """Holds the current tokens and renews them, one renewal at a time."""

    def __init__(self, base_url: str, token: str, refresh_token: str | None = None,
                 get_token: TokenSource | None = None,
                 on_tokens: Callable[[rest.Tokens], Any] | None = None,
                 http: httpx.AsyncClient | None = None, timeout: float = 10.0) -> None:
        if not token:
            raise ValueError("an access token is required (events_client.login gives one)")
        self.base_url = base_url
        self.access_token = token
        self.refresh_token = refresh_token
        self.renewals = 0
        self._get_token = get_token
        self._on_tokens = on_tokens
        self._http = http
        self._timeout = timeout
        self._lock = asyncio.Lock()
        # Set once the server refused the refresh token: nothing can renew after that.
        self.failure: AuthError | None = None
        # The latest token fetched here and when it arrived (time.monotonic()).
        self._obtained: tuple[str, float] | None = None

    @property
    def renewable(self) -> bool:
        """Whether the keeper has a way to get a new access token."""
        return bool(self.refresh_token or self._get_token)

    def refresh_in(self, token: str | None = None) -> float | None:
        """Returns the seconds until a token should be renewed (0 or less: now); None if it
        has no `exp`."""
        token = token or self.access_token
        claims = rest.token_claims(token)
        try:
            exp = float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return None
        try:
            lifetime: float | None = exp - float(claims["iat"])
        except (KeyError, TypeError, ValueError):
            lifetime = None
        if lifetime is not None and self._obtained is not None and self._obtained[0] == token:
            # A token this keeper fetched: count from when it arrived, so that a clock set
            # differently from the server's neither renews it in a loop nor too late.
            return self._obtained[1] + lifetime - _margin(lifetime) - time.monotonic()
        return exp - _margin(lifetime if lifetime is not None else exp - time.time()) - time.time()

    def due(self, token: str | None = None) -> bool:
        """Whether a token has reached its renewal time."""
        seconds = self.refresh_in(token)
        return seconds is not None and seconds <= 0

    async def renew(self, stale: str | None = None) -> bool:
        """Replaces the access token (`stale`: the one found expired or refused; None: the
        current one, if due). Returns False when there is no way to renew; raises AuthError
        when the server refuses the refresh token, ApiError or ConnectError when it could
        not answer (try again later)."""
        if self.failure is not None:
            raise self.failure
        if not self.renewable:
            return False
        async with self._lock:
            if stale is not None and self.access_token != stale:
                return True  # renewed meanwhile by another caller
            if stale is None and not self.due():
                return True
            try:
                await self._fetch()
            except AuthError as exc:
                self.failure = exc
                raise
        return True

    async def _fetch(self) -> None:
        if self.refresh_token:
            tokens = await rest.refresh(self.base_url, self.refresh_token, http=self._http,
                                        timeout=self._timeout)
            self.access_token, self.refresh_token = tokens.access_token, tokens.refresh_token
            self._obtained = (self.access_token, time.monotonic())
            self.renewals += 1
            if self._on_tokens is not None:
                outcome = self._on_tokens(tokens)
                if inspect.isawaitable(outcome):
                    await outcome
            return
        assert self._get_token is not None
        token = self._get_token()
        if inspect.isawaitable(token):
            token = await token
        if not token:
            raise AuthError(401, "unauthorized", "get_token returned no token")
        self.access_token = str(token)
        self._obtained = (self.access_token, time.monotonic())
        self.renewals += 1

    async def ensure_fresh(self) -> None:
        """Renews the token if it is due, before a connection opens; a server that cannot
        answer now is not an error here (the upgrade then says whether the token works)."""
        if not self.renewable or not self.due():
            return
        try:
            await self.renew()
        except AuthError:
            raise
        except (ConnectError, ApiError):
            pass  # the server cannot answer now: the upgrade will say whether the token works
