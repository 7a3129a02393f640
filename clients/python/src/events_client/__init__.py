"""events_client: a Python client for the events server.

Log in over REST, then keep one WebSocket open that resumes after every drop without losing
or repeating an event::

    tokens = await events_client.login("http://127.0.0.1:8080", "a@example.com", "pw")
    async with events_client.connect("http://127.0.0.1:8080", token=tokens.access_token,
                                     refresh_token=tokens.refresh_token) as client:
        room = await client.subscribe("room:lobby")
        async for event in client.events():
            ...
"""

from __future__ import annotations

from .backoff import Backoff
from .client import Client, connect
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
from .event import RECOVERY, Event
from .rest import Tokens, login, logout, refresh, register
from .subscription import Subscription

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AuthError",
    "Backoff",
    "Client",
    "ConnectError",
    "ConnectionLost",
    "Event",
    "EventsClientError",
    "RECOVERY",
    "RequestError",
    "RequestTimeout",
    "Revoked",
    "Subscription",
    "Tokens",
    "__version__",
    "connect",
    "login",
    "logout",
    "refresh",
    "register",
]
