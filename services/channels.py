"""The channel verbs of the inbound protocol: subscribe, unsubscribe, publish, presence,
history and typing. Each checks its input, the room's access rule and the connection's
subscriptions, then calls the room and message services or the hub's presence and typing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from auth.ratelimit import TokenBucket
from hub.history import StreamUnavailable
from services import validation as v
from services.errors import PermissionDenied, RateLimited, ValidationError
from services.hooks import Hooks
from services.inbound import NotSubscribed, Outcome, Peer, Verb, reply
from services.messages import MessageService, check_body
from services.principal import Principal
from services.rooms import RoomService, channel_room, room_name
from services.streams import StreamBusy

__all__ = ["ChannelVerbs"]

MAX_HISTORY = 100
MAX_BUCKETS = 50_000


class PresenceView(Protocol):
    """What the presence verb reads (hub.presence): the members on every node."""

    async def fetch(self, key: str) -> list[Any]: ...


class HistoryLog(Protocol):
    """The recent entries of a stream (the broker's recovery log)."""

    def before(self, stream: str, offset: int | None, limit: int) -> list[Any]: ...

    async def prepare(self, stream: str, since: object = None) -> None: ...


class TypingSignal(Protocol):
    """Where typing signals go (hub.typing)."""

    def signal(self, channel: str, user_id: int, name: str, active: bool) -> None: ...


def _object(field: str) -> Callable[[Any], dict[str, Any]]:
    """Returns a validator of a JSON object."""
    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise v.invalid(field, "must be a JSON object")
        return value
    return check


def _fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError("data must be a JSON object")
    return data


class ChannelVerbs:
    """Implements the channel verbs; `table()` gives them to the inbound dispatcher."""

    def __init__(self, rooms: RoomService, messages: MessageService, presence: PresenceView,
                 typing: TypingSignal, max_subscriptions: int, log: HistoryLog,
                 ready: Callable[[str], Awaitable[None]] | None = None,
                 rate: float = 20.0, burst: float = 50.0, *,
                 hooks: Hooks | None = None) -> None:
        self.log = log
        # The application's permission hooks, asked after the built-in rules allowed.
        self.hooks = hooks
        # Waits until a stream's next offsets are durably reserved (StreamBusy if they
        # cannot be soon); None when the broker numbers streams itself.
        self.ready = ready
        self.rooms = rooms
        self.messages = messages
        self.presence = presence
        self.typing = typing
        self.max_subscriptions = max_subscriptions
        # POST /api/v1/rooms/{name}/messages: each user's budget, as a socket's inbound one.
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, TokenBucket] = {}

    def log_size(self) -> int:
        """Returns how many log entries a history request looks through at most."""
        return getattr(self.log, "size", 1000)

    def table(self) -> dict[str, Verb]:
        """Returns the verbs by message type."""
        return {"subscribe": self.subscribe, "unsubscribe": self.unsubscribe,
                "publish": self.publish, "presence": self.presence_of,
                "history": self.history, "typing": self.typing_signal}

    async def _allowed(self, peer: Peer, channel: str) -> str:
        """Returns the room name if the peer may use channel (subscribed, or checked now)."""
        room = channel_room(channel)
        if channel not in peer.channels:
            await self.rooms.authorize(room, peer.user_id, peer.role)
        return room

    async def subscribe(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """subscribe {channel, since?, epoch?}: joins a room's stream, replaying what was missed.

        The reply carries the stream's position; the missed channel.message events follow it,
        then the subscription takes effect, all in one IOLoop turn (nothing is awaited after
        the log is read), so no live message comes before, between or twice.
        """
        fields = _fields(data)
        channel = fields.get("channel")
        room = channel_room(channel)
        since, epoch = fields.get("since"), fields.get("epoch")
        if channel in peer.channels:  # already live: nothing is missing, nothing to replay
            recovery, _ = peer.recover(channel, since, epoch)
            position = recovery.position(0)
            position["recovered"] = recovery.recovered and not recovery.entries
            return reply({"channel": channel, "subscribed": True, **position}, request_id)
        if len(peer.channels) >= self.max_subscriptions:
            raise PermissionDenied(
                f"at most {self.max_subscriptions} subscriptions per connection")
        await self.rooms.authorize(room, peer.user_id, peer.role)
        if self.hooks is not None and self.hooks.wants("subscribe"):
            await self.hooks.subscribe(peer.caller, channel, peer.client_id, peer.transport)
        try:
            await self.log.prepare(channel, since)
        except StreamUnavailable:
            raise StreamBusy("the server cannot read this room's stream now; retry") from None
        recovery, missed = peer.recover(channel, since, epoch)
        answer = reply({"channel": channel, "subscribed": True,
                        **recovery.position(len(missed))}, request_id)
        return Outcome(reply=answer.reply, replay=tuple(missed),
                       then=lambda: peer.subscribe(channel))

    async def unsubscribe(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """unsubscribe {channel}: leaves a room's stream."""
        channel = _fields(data).get("channel")
        channel_room(channel)
        if not peer.unsubscribe(channel):
            raise NotSubscribed(f"not subscribed to {channel}")
        return reply({"channel": channel, "subscribed": False}, request_id)

    async def publish(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """publish {channel, data}: sends a message to every subscriber, the sender included."""
        fields = _fields(data)
        room = await self._allowed(peer, fields.get("channel"))
        body = fields.get("data")
        if self.hooks is not None and self.hooks.wants("publish"):
            check_body(body)  # the built-in limits first
            body = await self.hooks.publish(peer.caller, fields["channel"], body,
                                            peer.client_id, peer.transport)
        sent = await self._publish(room, peer.user_id, peer.name, body)
        return reply({"channel": fields["channel"], **sent}, request_id)

    async def post(self, actor: Principal, name: str, body: Any) -> dict[str, Any]:
        """POST /api/v1/rooms/{name}/messages {"data"}: the publish verb for a caller without a
        socket (an SSE listener, a script): the same rules, limits and stored message."""
        fields = v.Fields(body, ("data",))
        data = fields.required("data", _object("data"))
        fields.done()
        room = room_name(name)
        bucket = self._buckets.get(actor.id)
        if bucket is None:
            while len(self._buckets) >= MAX_BUCKETS:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[actor.id] = TokenBucket(self.rate, self.burst)
        if not bucket.take():
            raise RateLimited("too many messages: slow down", 1)
        await self.rooms.authorize(room, actor.id, actor.role)
        if self.hooks is not None and self.hooks.wants("publish"):
            check_body(data)  # the built-in limits first; no connection: no client id
            data = await self.hooks.publish(actor, f"room:{room}", data, None, "http")
        sent = await self._publish(room, actor.id, actor.name, data)
        return {"channel": f"room:{room}", **sent}

    async def _publish(self, room: str, user_id: int, name: str, data: Any) -> dict[str, Any]:
        """Publishes a member's message to a room they may use (checked by the caller)."""
        if self.ready is not None:
            await self.ready(f"room:{room}")
        try:
            return await self.messages.publish(room, user_id, name, data)
        except StreamUnavailable:
            raise StreamBusy("the server cannot number messages right now; retry later") from None

    async def presence_of(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """presence {channel}: the users present in a room and their connection counts."""
        channel = _fields(data).get("channel")
        await self._allowed(peer, channel)
        members = [{"user_id": m.user_id, "name": m.name, "connections": m.connections}
                   for m in await self.presence.fetch(channel)]
        return reply({"channel": channel, "members": members}, request_id)

    async def history(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """history {channel, before?, limit?}: the recovery log's messages, then stored ones,
        newest first, each with its offset."""
        fields = _fields(data)
        room = await self._allowed(peer, fields.get("channel"))
        before, limit = fields.get("before"), fields.get("limit", 50)
        if before is not None and not isinstance(before, str):
            raise ValidationError("before must be a message id (a string)")
        if type(limit) is not int or not 1 <= limit <= MAX_HISTORY:
            raise ValidationError(f"limit must be a whole number from 1 to {MAX_HISTORY}")
        recent = [{**e.event.data, "offset": e.event.offset}
                  for e in self.log.before(fields["channel"], None, self.log_size())
                  if before is None or e.event.data["id"] < before][:limit]
        messages = await self.messages.history(room, before, limit, recent)
        return reply({"channel": fields["channel"], "messages": messages}, request_id)

    async def typing_signal(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """typing {channel, active}: tells the room's other users; no reply on success."""
        fields = _fields(data)
        channel, active = fields.get("channel"), fields.get("active")
        channel_room(channel)
        if not isinstance(active, bool):
            raise ValidationError("active must be true or false")
        if channel not in peer.channels:
            raise NotSubscribed(f"subscribe to {channel} before sending typing")
        self.typing.signal(channel, peer.user_id, peer.name, active)
        return Outcome()
