"""The hub's registry changes: roles, revocations, forced unsubscribes, drops and shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable

from hub.client import Client
from hub.disconnect import Close
from hub.events import Encoded, Event, EventType
from hub.indexes import EMPTY, discard
from hub.messages import (
    FEED,
    CloseSession,
    CloseStream,
    CloseUser,
    Control,
    RevokeKey,
    SetRole,
    Unsubscribe,
)

__all__ = ["Controls"]

log = logging.getLogger("hub")


class Controls:
    """Hub methods that apply a Control (hub/messages.py) to the local registry.

    Cold code, run per registry change rather than per delivery; mixed into hub.hub.Hub,
    which owns the indexes and the registry and write methods used here.
    """

    clients: dict[str, Client]
    by_user: dict[int, dict[str, Client]]
    by_role: dict[str, dict[str, Client]]
    by_session: dict[str, dict[str, Client]]
    by_channel: dict[str, dict[str, Client]]
    control_observers: list[Callable[[Control], object]]
    draining: bool
    # Hub's registry and write methods (declared here so the mixin reads as typed).
    unsubscribe: Callable[[Client, str], bool]
    unregister: Callable[[Client], bool]
    _write: Callable[[list[Client], Encoded], int]

    def apply(self, control: Control) -> int:
        """Applies a registry change; returns how many local connections it touched."""
        for observe in self.control_observers:
            observe(control)
        match control:
            case SetRole(user_id, role):
                return self._set_role(user_id, role)
            case CloseUser(user_id, close, below_version):
                clients = list(self.by_user.get(user_id, EMPTY).values())
                if below_version is not None:
                    clients = [c for c in clients if c.token_version < below_version]
            case CloseSession(session_id, close):
                clients = list(self.by_session.get(session_id, EMPTY).values())
            case Unsubscribe(channel, reason, user_id):
                return self._unsubscribe_all(channel, reason, user_id)
            case CloseStream(stream, close):
                index = self.clients if stream == FEED else self.by_channel.get(stream, EMPTY)
                clients = list(index.values())
            case RevokeKey():
                return 0  # no socket holds a key: the observers above forget it
            case _:
                raise TypeError(f"unknown control {control!r}")
        for client in clients:
            self.drop(client, close)
        return len(clients)

    def _unsubscribe_all(self, channel: str, reason: str, user_id: int | None) -> int:
        """Unsubscribes a channel's connections (or one user's) and tells each of them why."""
        clients = [c for c in self.by_channel.get(channel, EMPTY).values()
                   if user_id is None or c.user_id == user_id]
        for client in clients:
            self.unsubscribe(client, channel)
        data = {"channel": channel, "reason": reason}
        event = Event(EventType.CHANNEL_UNSUBSCRIBED, data, channel=channel).encode()
        return self._write(clients, event)

    def _set_role(self, user_id: int, role: str) -> int:
        clients = list(self.by_user.get(user_id, EMPTY).values())
        for client in clients:
            discard(self.by_role, client.role, client.id)
            client.role = role
            self.by_role.setdefault(role, {})[client.id] = client
        return len(clients)

    def drop(self, client: Client, close: Close) -> None:
        """Unregisters a connection at once and closes it with a code and reason."""
        if self.unregister(client):
            try:
                client.conn.close(*close)
            except Exception:
                log.exception("closing %r failed", client)

    def close_all(self, close: Close) -> int:
        """Closes every local connection and refuses new ones (shutdown); returns how many."""
        self.draining = True
        clients = list(self.clients.values())
        for client in clients:
            self.drop(client, close)
        return len(clients)
