"""The REST calls a client needs: register, login, refresh and logout (docs/api.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import ApiError, AuthError, ConnectError
from .urls import api_url

__all__ = ["Tokens", "login", "register", "refresh", "logout", "token_claims"]

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Tokens:
    """The token bundle of register, login and refresh: keep the refresh token, it rotates."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = 0
    user: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Tokens:
        """Builds the bundle from a response's `data`."""
        return cls(access_token=data["access_token"], refresh_token=data["refresh_token"],
                   token_type=data.get("token_type", "Bearer"),
                   expires_in=int(data.get("expires_in", 0)), user=data.get("user") or {})


def token_claims(token: str) -> dict[str, Any]:
    """Returns a JWT's payload without verifying it (the client only reads `exp` and `iat`
    to know when to refresh; the server checks the signature); {} if it is not a JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


@asynccontextmanager
async def _session(http: httpx.AsyncClient | None, timeout: float
                   ) -> AsyncIterator[httpx.AsyncClient]:
    """Yields the caller's HTTP client, or a short-lived one of its own."""
    if http is not None:
        yield http
        return
    async with httpx.AsyncClient(timeout=timeout) as own:
        yield own


async def _post(url: str, path: str, body: dict[str, Any] | None, *, token: str | None = None,
                http: httpx.AsyncClient | None = None, timeout: float = DEFAULT_TIMEOUT
                ) -> dict[str, Any]:
    """POSTs JSON to a route and returns the envelope's `data`; raises AuthError on 401/403,
    ApiError on any other error status, ConnectError when the server cannot be reached."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with _session(http, timeout) as client:
            response = await client.post(api_url(url, path), json=body, headers=headers,
                                         timeout=timeout)
    except httpx.TransportError as exc:
        raise ConnectError(f"{path}: {exc or type(exc).__name__}") from exc
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if response.is_success and isinstance(parsed, dict) and isinstance(parsed.get("data"), dict):
        data: dict[str, Any] = parsed["data"]
        return data
    error = parsed.get("error") if isinstance(parsed, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = AuthError if response.status_code in (401, 403) else ApiError
    raise kind(response.status_code, str(error.get("code", "http_error")),
               str(error.get("message", response.reason_phrase)))


async def login(url: str, email: str, password: str, *, http: httpx.AsyncClient | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> Tokens:
    """Logs in with email and password; returns the new session's tokens."""
    data = await _post(url, "/api/v1/auth/login", {"email": email, "password": password},
                       http=http, timeout=timeout)
    return Tokens.from_data(data)


async def register(url: str, name: str, email: str, password: str, *, age: int | None = None,
                   http: httpx.AsyncClient | None = None, timeout: float = DEFAULT_TIMEOUT
                   ) -> Tokens:
    """Registers an account (role `user`); returns its first session's tokens."""
    body: dict[str, Any] = {"name": name, "email": email, "password": password}
    if age is not None:
        body["age"] = age
    data = await _post(url, "/api/v1/auth/register", body, http=http, timeout=timeout)
    return Tokens.from_data(data)


async def refresh(url: str, refresh_token: str, *, http: httpx.AsyncClient | None = None,
                  timeout: float = DEFAULT_TIMEOUT) -> Tokens:
    """Spends a refresh token for a new pair in the same session (each works once)."""
    data = await _post(url, "/api/v1/auth/refresh", {"refresh_token": refresh_token},
                       http=http, timeout=timeout)
    return Tokens.from_data(data)


async def logout(url: str, access_token: str, *, http: httpx.AsyncClient | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
    """Ends the session of an access token (its sockets are closed with 1008)."""
    await _post(url, "/api/v1/auth/logout", None, token=access_token, http=http,
                timeout=timeout)
