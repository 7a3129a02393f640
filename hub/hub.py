"""The connection registry and fan-out: who is connected, and writing one event to many."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hub.broker import Broker
from hub.client import Client
from hub.controls import Controls
from hub.disconnect import SLOW_CONSUMER
from hub.events import SSE, Encoded, Event, EventType
from hub.indexes import EMPTY, discard
from hub.messages import (
    ADMINS,
    ALL,
    Control,
    Message,
    Publication,
    Target,
    ToAll,
    ToChannel,
    ToRole,
    ToUser,
    stream_of,
    to_role,
    to_user,
)
from hub.presence import ONLINE, MemoryPresence, Presence
from hub.replay import Replay
from hub.stats import Stats
from hub.transport import WriteBatch, write_direct
from hub.typing import Typing

__all__ = ["Hub", "MAX_QUEUED_MESSAGES", "MAX_UNSENT_BYTES"]

log = logging.getLogger("hub")

MAX_QUEUED_MESSAGES = 256
MAX_UNSENT_BYTES = 1024 * 1024


class Hub(Controls, Replay, Stats):
    """Registry of local connections indexed by client, user, role, session and channel.

    Touched only on the IOLoop. A targeted send costs O(recipients): the indexes hand over
    exactly the recipients, and the event is encoded once per publish, not once per client.
    The hub never touches the database. Its cold parts are mixed in: registry changes
    (hub/controls.py), resume replay (hub/replay.py) and the stats object (hub/stats.py).
    """

    def __init__(
        self,
        broker: Broker,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        max_unsent_bytes: int = MAX_UNSENT_BYTES,
        presence: Presence | None = None,
        typing: Typing | None = None,
    ) -> None:
        self.clients: dict[str, Client] = {}
        self.by_user: dict[int, dict[str, Client]] = {}
        self.by_role: dict[str, dict[str, Client]] = {}
        self.by_session: dict[str, dict[str, Client]] = {}
        self.by_channel: dict[str, dict[str, Client]] = {}
        # Per-user presence in each channel and online; it reports joins and leaves back.
        self.presence: Presence = presence or MemoryPresence()
        self.presence.attach(self._presence_changed)
        self.typing = typing or Typing(self._send_typing)
        # Set by close_all(): a node that is shutting down accepts no new connections.
        self.draining = False
        self.max_queued_messages = max_queued_messages
        self.max_unsent_bytes = max_unsent_bytes
        # Running totals since start, for the dashboard and metrics.
        self.messages_delivered = 0
        self.events_published = 0
        self.slow_consumers_dropped = 0
        self.sse_clients = 0  # registered connections that are SSE streams (the rest: WebSockets)
        # Resumes that named a position, by outcome, and the missed events they replayed.
        self.recoveries = {"recovered": 0, "not_recovered": 0}
        self.events_replayed = 0
        self.published_by_type: dict[str, int] = {}
        # Called once per publish with the seconds from publish to the last local socket write
        # (metrics and the dashboard attach here; the hub itself never imports them).
        self.observe_delivery: Callable[[float], None] | None = None
        # Called with every registry change this node applies, its own and other nodes' (the
        # session cache forgets what a revocation revokes).
        self.control_observers: list[Callable[[Control], object]] = []
        # Called with every join and leave this node announces (key, user id, name, joined).
        self.presence_observers: list[Callable[[str, int, str, bool], object]] = []
        # Sockets holding frames in this IOLoop iteration; each is written in one send() at
        # its end, then settled against the slow-consumer limits.
        self.writes = WriteBatch(self.settle)
        # Publishes go out through the broker; the application context owns it and attaches
        # handle() to it, so every node's broker (this one's included) calls back into handle().
        self.broker = broker

    # -- registry ------------------------------------------------------------------------

    def register(self, client: Client) -> None:
        """Adds a connection to every index."""
        self.clients[client.id] = client
        if client.variant == SSE:
            self.sse_clients += 1
        self.by_user.setdefault(client.user_id, {})[client.id] = client
        self.by_role.setdefault(client.role, {})[client.id] = client
        if client.session_id:
            self.by_session.setdefault(client.session_id, {})[client.id] = client
        self.presence.join(ONLINE, client.user_id, client.name)

    def unregister(self, client: Client) -> bool:
        """Removes a connection from every index; False if it was not registered."""
        if self.clients.pop(client.id, None) is None:
            return False
        if client.variant == SSE:
            self.sse_clients -= 1
        for channel in list(client.channels):
            self.unsubscribe(client, channel)
        discard(self.by_user, client.user_id, client.id)
        discard(self.by_role, client.role, client.id)
        if client.session_id:
            discard(self.by_session, client.session_id, client.id)
        self.presence.leave(ONLINE, client.user_id)
        return True

    def subscribe(self, client: Client, channel: str) -> bool:
        """Adds a registered connection to a channel; False if it already was subscribed."""
        if channel in client.channels or client.id not in self.clients:
            return False
        channels = client.channels
        if not isinstance(channels, set):  # the shared empty frozenset of a new connection
            channels = client.channels = set()
        channels.add(channel)
        self.by_channel.setdefault(channel, {})[client.id] = client
        self.presence.join(channel, client.user_id, client.name)
        return True

    def unsubscribe(self, client: Client, channel: str) -> bool:
        """Removes a connection from a channel; False if it was not subscribed."""
        if channel not in client.channels:
            return False
        if isinstance(client.channels, set):
            client.channels.discard(channel)
        discard(self.by_channel, channel, client.id)
        self.presence.leave(channel, client.user_id)
        if not any(channel in c.channels for c in self.by_user.get(client.user_id, {}).values()):
            self.typing.forget_channel(channel, client.user_id)
        return True

    def subscriber_count(self, channel: str) -> int:
        """Returns how many local connections are subscribed to channel."""
        return len(self.by_channel.get(channel, ()))

    def _presence_changed(self, key: str, user_id: int, name: str, joined: bool) -> None:
        data = {"user_id": user_id, "name": name}
        if key == ONLINE:
            type_ = EventType.USER_ONLINE if joined else EventType.USER_OFFLINE
            self.publish(Event(type_, data), ADMINS)
        else:
            type_ = EventType.PRESENCE_JOINED if joined else EventType.PRESENCE_LEFT
            self.publish(Event(type_, data, channel=key), (ToChannel(key),))
        for observer in self.presence_observers:
            observer(key, user_id, name, joined)

    def _send_typing(self, channel: str, user_id: int, name: str, active: bool) -> None:
        data = {"user_id": user_id, "name": name, "active": active}
        self.publish(Event(EventType.TYPING, data, channel=channel),
                     (ToChannel(channel, skip_user=user_id),))

    def user_connection_count(self, user_id: int) -> int:
        """Returns how many local connections a user has open."""
        return len(self.by_user.get(user_id, ()))

    def update_session(self, client: Client, session_id: str, token_version: int) -> None:
        """Moves a connection to another session after an in-band token refresh."""
        if client.session_id:
            discard(self.by_session, client.session_id, client.id)
        client.session_id, client.token_version = session_id, token_version
        if session_id and client.id in self.clients:
            self.by_session.setdefault(session_id, {})[client.id] = client

    # -- publishing ----------------------------------------------------------------------

    def publish(self, event: Event, targets: tuple[Target, ...], logged: bool = False) -> int:
        """Publishes event to targets through the broker; returns local recipients.

        The broker positions a logged event in its stream, then handle() encodes it once.
        """
        started = time.perf_counter()
        delivered = self.broker.publish(Publication(event, targets, stream_of(targets), logged))
        # With the memory broker the local fan-out has happened by now; a broker that delivers
        # asynchronously (Redis) will carry the publish time and observe in handle() instead.
        if self.observe_delivery is not None:
            self.observe_delivery(time.perf_counter() - started)
        # Counted once published (a stream without reserved offsets refuses the publish).
        self.events_published += 1
        by_type = self.published_by_type
        by_type[event.type] = by_type.get(event.type, 0) + 1
        return delivered

    def publish_logged(self, event: Event, targets: tuple[Target, ...],
                       key: str | None = None) -> asyncio.Future[tuple[str, int]]:
        """Publishes a logged event in this node's publishing order now; the future gives
        (offset, local recipients) once it is numbered, or fails with StreamUnavailable.
        `key` (an event id) deduplicates where the log is shared."""
        started = time.perf_counter()
        future = self.broker.publish_logged(
            Publication(event, targets, stream_of(targets), True), key)
        if self.observe_delivery is not None and not self.broker.deferred:
            self.observe_delivery(time.perf_counter() - started)
        self.events_published += 1
        by_type = self.published_by_type
        by_type[event.type] = by_type.get(event.type, 0) + 1
        return future

    def broadcast_to_all(self, type_: str, data: dict[str, object]) -> int:
        """The seed's BroadcastToAll: sends an event to every connection."""
        return self.publish(Event(type_, data), ALL)

    def broadcast_to_user(self, user_id: int, type_: str, data: dict[str, object]) -> int:
        """The seed's BroadcastToUser: sends an event to every connection (tab) of one user."""
        return self.publish(Event(type_, data), to_user(user_id))

    def broadcast_to_role(self, role: str, type_: str, data: dict[str, object]) -> int:
        """The seed's BroadcastToRole: sends an event to every connection holding role."""
        return self.publish(Event(type_, data), to_role(role))

    def control(self, control: Control) -> int:
        """Publishes a registry change through the broker so every node applies it."""
        return self.broker.publish(control)

    def handle(self, message: Message) -> int:
        """Applies a message from the broker to the local registry."""
        if isinstance(message, Publication):
            return self.deliver(message.targets, message.event.encode())
        return self.apply(message)

    def recipients(self, targets: tuple[Target, ...]) -> list[Client]:
        """Returns each connection matched by any target, once."""
        if len(targets) == 1:
            target = targets[0]
            if isinstance(target, ToChannel) and target.skip_user is not None:
                skip = target.skip_user
                return [c for c in self._index(target).values() if c.user_id != skip]
            return list(self._index(target).values())
        merged: dict[str, Client] = {}
        for target in targets:
            merged.update(self._index(target))
        return list(merged.values())

    def _index(self, target: Target) -> dict[str, Client]:
        match target:
            case ToAll():
                return self.clients
            case ToUser(user_id):
                return self.by_user.get(user_id, EMPTY)
            case ToRole(role):
                return self.by_role.get(role, EMPTY)
            case ToChannel(channel):
                return self.by_channel.get(channel, EMPTY)
        raise TypeError(f"unknown target {target!r}")

    def deliver(self, targets: tuple[Target, ...], event: Encoded) -> int:
        """Writes one encoded event to its local recipients without waiting on any of them.

        Returns how many received it: connections closed as slow consumers in this same
        send are not counted.
        """
        return self._write(self.recipients(targets), event)

    def _write(self, recipients: list[Client], event: Encoded) -> int:
        slow: list[Client] = []
        # The first fan-out of an IOLoop iteration writes to each socket whose Client.sock is
        # set straight from here (transport.write_direct): the socket handler and its Tornado
        # protocol and stream stay cold, which measured 0.75x the CPU per delivery at 6k-8k
        # sockets. Held frames, later fan-outs of the iteration and sockets with bytes queued
        # or closing go through conn.write_frame().
        direct = not self.writes.holding
        frames = event.frames
        for client in recipients:
            variant = client.variant
            frame = frames[variant] or event.frame_for(variant)
            try:
                sock = client.sock
                if direct and sock is not None and client.held is None:
                    if write_direct(client, sock, frame):
                        continue
                elif client.conn.write_frame(frame):
                    continue
                queued, unsent = client.conn.backlog()
            except Exception:  # one broken connection must not stop the fan-out
                log.exception("send to %r failed", client)
                slow.append(client)
                continue
            if queued > self.max_queued_messages or unsent > self.max_unsent_bytes:
                slow.append(client)
        for client in slow:
            self.slow_consumers_dropped += 1
            log.warning("closing %r: slow consumer", client)
            self.drop(client, SLOW_CONSUMER)
        delivered = len(recipients) - len(slow)
        self.messages_delivered += delivered
        self.writes.arm()  # later events of this IOLoop iteration leave together at its end
        return delivered

    def settle(self, client: Client) -> bool:
        """Closes client as a slow consumer if its backlog is over the limits; True if it stays.

        For the frames a socket held and wrote at the end of the IOLoop iteration, which the
        fan-out's own check did not see. Its stream counts queued writes per message.
        """
        if client.id not in self.clients:  # already closed or dropped
            return False
        try:
            queued, unsent = client.conn.backlog()
        except Exception:
            log.exception("backlog of %r failed", client)
            queued = unsent = 1 << 62
        if queued <= self.max_queued_messages and unsent <= self.max_unsent_bytes:
            return True
        self.slow_consumers_dropped += 1
        log.warning("closing %r: slow consumer", client)
        self.drop(client, SLOW_CONSUMER)
        return False
