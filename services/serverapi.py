"""The server API: what an application's other services do with an API key.

notify (a feed event of the application's own `app.*` type to a user, a role or everyone,
logged with an offset so reconnecting clients recover it), publish (a room message from the
application), presence and history of a room, and disconnect (close every socket of a user
on every node). Each checks the key's scope first.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import peewee
from tornado.ioloop import PeriodicCallback

from hub.disconnect import DISCONNECTED
from hub.events import dumps
from hub.feed import FeedEvent
from hub.history import StreamUnavailable
from hub.hub import Hub
from hub.messages import ADMINS, ALL, FEED, CloseUser, Target, to_role, to_user
from models.db import Runner, write_tx
from models.outbox import OutboxEvent
from models.room import Room, RoomMessage
from models.user import ROLES, User
from services import validation as v
from services.errors import NotFound, ServiceError
from services.idempotency import Idempotency, claim, request_hash
from services.messages import MessageService, check_body
from services.outbox import Relay, stage
from services.principal import KeyPrincipal
from services.rooms import channel_room
from services.streams import StreamBusy

__all__ = ["ServerApi", "UnknownChannel", "APP_TYPE"]

log = logging.getLogger("api")

PURGE_EVERY_MS = 3600 * 1000
APP_TYPE = re.compile(r"^app\.[A-Za-z0-9_.:-]{1,64}\Z")  # not `$`: no final newline
MAX_DATA_BYTES = 64 * 1024
NUMBERED_WITHIN = 10.0  # seconds notify waits for its event's offset
HISTORY_LIMIT, HISTORY_MAX = 100, 1000


class UnknownChannel(NotFound):
    """The channel names no room."""

    code = "unknown_channel"


class Unnumbered(ServiceError):
    """The event was stored but could not be numbered in time (the broker is down)."""

    status = 503
    code = "unavailable"

    def __init__(self) -> None:
        super().__init__("the event is stored and will be delivered, but could not be numbered "
                         "yet; retry with the same Idempotency-Key to learn its offset")
        self.retry_after = 2


def _audience(fields: v.Fields) -> tuple[Target, ...]:
    """Returns the targets of exactly one of user_id, role or all (recording what is wrong)."""
    user_id = fields.optional("user_id", v.positive_int("user_id"))
    role = fields.optional("role", v.choice("role", ROLES))
    everyone = fields.optional("all", _true)
    given = [k for k in ("user_id", "role", "all") if k in fields.body]
    if len(given) != 1:
        fields.errors["audience"] = "must be exactly one of user_id, role or all"
    if user_id is not None:
        return to_user(user_id)
    if role is not None:
        return ADMINS if role == "admin" else to_role(role)
    return ALL if everyone else ()


def _true(value: Any) -> bool:
    if value is not True:
        raise v.invalid("all", "must be true")
    return True


def _app_type(value: Any) -> str:
    if not isinstance(value, str) or not APP_TYPE.match(value):
        raise v.invalid("type", "must be app.<name> (1-64 of A-Z, a-z, 0-9, _ . : -)")
    return value


def _data(value: Any) -> dict[str, Any]:
    """Returns value if it is a JSON object of at most 64 KiB."""
    if not isinstance(value, dict):
        raise v.invalid("data", "must be a JSON object")
    if len(dumps(value).encode("utf-8")) > MAX_DATA_BYTES:
        raise v.invalid("data", f"may be at most {MAX_DATA_BYTES // 1024} KiB of JSON")
    return value


def _offset(value: str | None) -> int:
    """Returns a `since` offset (a whole number, 0 when absent)."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 18:
        raise v.invalid("since", "must be an offset (a whole number) the server gave")
    return int(value)


def _message(value: Any) -> dict[str, Any]:
    """Returns a room message's data: a JSON object of at most 16 KiB."""
    if not isinstance(value, dict):
        raise v.invalid("data", "must be a JSON object")
    check_body(value)
    return value


class ServerApi:
    """The /api/v1/server routes' operations."""

    def __init__(self, run: Runner, hub: Hub, relay: Relay, messages: MessageService,
                 ready: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.run = run
        # Waits until a stream may number an event (the memory log's durable reservations).
        self.ready = ready
        self.hub = hub
        self.relay = relay
        self.messages = messages
        self.idempotency = Idempotency(run)
        self._purge: PeriodicCallback | None = None

    def start(self) -> None:
        """Purges Idempotency-Key claims past their 24 hours, every hour."""
        self._purge = PeriodicCallback(self._purge_claims, PURGE_EVERY_MS)
        self._purge.start()

    def stop(self) -> None:
        """Stops the hourly purge."""
        if self._purge is not None:
            self._purge.stop()
            self._purge = None

    async def _purge_claims(self) -> None:
        try:
            await self.idempotency.purge()
        except Exception:
            log.exception("purging old Idempotency-Key claims failed")

    # -- notify --------------------------------------------------------------------------

    async def notify(self, caller: KeyPrincipal, body: Any, key: str | None) -> dict[str, Any]:
        """Logs an `app.*` event on the feed for its audience; answers its offset and epoch
        (and, with the memory broker, how many sockets of this node received it)."""
        caller.require("notify")
        fields = v.Fields(body, ("type", "data", "user_id", "role", "all"))
        type_ = fields.required("type", _app_type)
        data = fields.optional("data", _data, {})
        targets = _audience(fields)
        fields.done()
        body = fields.body
        event = FeedEvent(type_, data, targets)
        digest = request_hash("notify", body) if key else ""

        def tx() -> tuple[list[Any], Any]:
            with write_tx():
                if "user_id" in body and not User.select().where(
                        User.id == body["user_id"]).exists():
                    raise NotFound(f"no user with id {body['user_id']}")
                rows = stage([event])
                found = (claim(caller.id, key, "notify", digest, rows[0].event_id)
                         if key else None)
                if found is not None and found.earlier is not None:
                    raise _Earlier(found.earlier)
                return rows, None

        try:
            rows, _ = await self._with_claim(tx)
        except _Earlier as earlier:
            return await self.idempotency.replay(earlier.record, self._rebuild_notify)
        event_id = rows[0].event_id
        numbered = self.relay.expect(event_id)
        recipients = self.relay.publish(rows)
        try:
            offset = await asyncio.wait_for(asyncio.shield(numbered), NUMBERED_WITHIN)
        except TimeoutError:
            self.relay.forget(event_id)
            raise Unnumbered() from None
        answer: dict[str, Any] = {"offset": str(offset), "epoch": await self._epoch(FEED)}
        if not self.hub.broker.deferred:
            answer["recipients"] = recipients
        if key:
            await self.idempotency.store(caller.id, key, answer)
        return answer

    async def _rebuild_notify(self, event_id: str) -> dict[str, Any] | None:
        row = await self.run(OutboxEvent.get_or_none, OutboxEvent.event_id == event_id)
        if row is None or row.offset is None:
            return None
        return {"offset": str(row.offset), "epoch": await self._epoch(FEED)}

    async def _epoch(self, stream: str) -> str:
        """Returns a stream's epoch, reading it from the shared log first on a node that has
        not read that stream yet (with the Redis broker, one no socket of it has reached):
        Unnumbered (503) if it cannot be read now; the event itself is stored and numbered."""
        try:
            await self.hub.prepare(stream)
        except StreamUnavailable:
            raise Unnumbered() from None
        return self.hub.broker.log.position(stream)[0]

    async def _with_claim(self, tx: Any) -> Any:
        """Runs a claiming transaction; a concurrent claim of the same key (a unique-index
        conflict, its transaction rolled back) is retried once, finding the other's claim."""
        try:
            return await self.run(tx)
        except peewee.IntegrityError:
            return await self.run(tx)

    # -- publish -------------------------------------------------------------------------

    async def publish(self, caller: KeyPrincipal, body: Any, key: str | None) -> dict[str, Any]:
        """Publishes a room message from the application (`from: {"api_key": <name>}`),
        stored and numbered like a member's."""
        caller.require("publish")
        fields = v.Fields(body, ("channel", "data"))
        room = fields.required("channel", channel_room)
        data = fields.required("data", _message)
        fields.done()
        body = fields.body
        message_id = self.messages.ids.next()
        digest = request_hash("publish", body) if key else ""

        def tx() -> None:
            with write_tx():
                if not Room.select().where(Room.name == room).exists():
                    raise UnknownChannel(f"no room named {room!r}")
                if key:
                    found = claim(caller.id, key, "publish", digest, message_id[0])
                    if found.earlier is not None:
                        raise _Earlier(found.earlier)

        try:
            await self._with_claim(tx)
        except _Earlier as earlier:
            return await self.idempotency.replay(earlier.record, self._rebuild_publish)
        if self.ready is not None:
            await self.ready(f"room:{room}")
        try:
            sent = await self.messages.publish(room, None, caller.name, data,
                                               api_key=caller.name, message_id=message_id)
        except StreamUnavailable:
            raise StreamBusy("the server cannot number messages right now; retry later") from None
        answer = {**sent, "channel": f"room:{room}", "epoch": await self._epoch(f"room:{room}")}
        if key:
            await self.idempotency.store(caller.id, key, answer)
        return answer

    async def _rebuild_publish(self, message_id: str) -> dict[str, Any] | None:
        await self.messages.flush()
        row = await self.run(RoomMessage.get_or_none, RoomMessage.id == message_id)
        if row is None:
            return None
        public = row.to_public()
        channel = f"room:{row.room}"
        return {"id": public["id"], "sent_at": public["sent_at"], "offset": public["offset"],
                "channel": channel, "epoch": await self._epoch(channel)}

    # -- presence, history, disconnect ---------------------------------------------------

    async def _room(self, channel: Any) -> str:
        room = channel_room(channel)
        if not await self.run(lambda: Room.select().where(Room.name == room).exists()):
            raise UnknownChannel(f"no room named {room!r}")
        return room

    async def presence(self, caller: KeyPrincipal, channel: Any) -> dict[str, Any]:
        """Who is in a room, on every node."""
        caller.require("presence")
        room = await self._room(channel)
        members = await self.hub.presence.fetch(f"room:{room}")
        return {"channel": f"room:{room}",
                "members": [{"user_id": m.user_id, "name": m.name}
                            for m in sorted(members, key=lambda m: m.user_id)]}

    async def history(self, caller: KeyPrincipal, channel: Any, since: str | None,
                      limit: str | None) -> dict[str, Any]:
        """A room's messages after an offset (from the oldest kept without one), oldest
        first, with the stream's epoch."""
        caller.require("history")
        room = await self._room(channel)
        after = _offset(since)
        count = v.query_number(limit, "limit", HISTORY_LIMIT, HISTORY_MAX)
        stream = f"room:{room}"
        await self.hub.prepare(stream)
        messages = await self.messages.after(room, after, count)
        return {"channel": stream, "epoch": self.hub.broker.log.position(stream)[0],
                "messages": messages}

    async def disconnect(self, caller: KeyPrincipal, body: Any) -> dict[str, Any]:
        """Closes every socket of a user on every node with 1008 "disconnected by server";
        answers how many were closed on this node."""
        caller.require("disconnect")
        fields = v.Fields(body, ("user_id",))
        user_id = fields.required("user_id", v.positive_int("user_id"))
        fields.done()
        here = self.hub.user_connection_count(user_id)
        self.hub.control(CloseUser(user_id, DISCONNECTED))
        return {"disconnected": here}


class _Earlier(Exception):
    """Carries the earlier claim of an Idempotency-Key out of the claiming transaction."""

    def __init__(self, record: Any) -> None:
        super().__init__("idempotency key already claimed")
        self.record = record
