"""The channel verbs of the inbound protocol: subscribe, unsubscribe, publish, presence,
history and typing. Each checks its input, the room's access rule and the connection's
subscriptions, then calls the room and message services or the hub's presence and typing."""

from __future__ import annotations

from typing import Any, Protocol

from services.errors import PermissionDenied, ValidationError
from services.inbound import NotSubscribed, Outcome, Peer, Verb, reply
from services.messages import MessageService
from services.rooms import RoomService, channel_room

__all__ = ["ChannelVerbs"]

MAX_HISTORY = 100


class PresenceView(Protocol):
    """What the presence verb reads (hub.presence)."""

    def members(self, key: str) -> list[Any]: ...


class TypingSignal(Protocol):
    """Where typing signals go (hub.typing)."""

    def signal(self, channel: str, user_id: int, name: str, active: bool) -> None: ...


def _fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError("data must be a JSON object")
    return data


class ChannelVerbs:
    """Implements the channel verbs; `table()` gives them to the inbound dispatcher."""

    def __init__(self, rooms: RoomService, messages: MessageService, presence: PresenceView,
                 typing: TypingSignal, max_subscriptions: int) -> None:
        self.rooms = rooms
        self.messages = messages
        self.presence = presence
        self.typing = typing
        self.max_subscriptions = max_subscriptions

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
        """subscribe {channel}: joins a room's stream; subscribing twice is answered the same."""
        channel = _fields(data).get("channel")
        room = channel_room(channel)
        if channel not in peer.channels:
            if len(peer.channels) >= self.max_subscriptions:
                raise PermissionDenied(
                    f"at most {self.max_subscriptions} subscriptions per connection")
            await self.rooms.authorize(room, peer.user_id, peer.role)
            peer.subscribe(channel)
        return reply({"channel": channel, "subscribed": True}, request_id)

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
        sent = self.messages.publish(room, peer.user_id, peer.name, fields.get("data"))
        return reply({"channel": fields["channel"], **sent}, request_id)

    async def presence_of(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """presence {channel}: the users present in a room and their connection counts."""
        channel = _fields(data).get("channel")
        await self._allowed(peer, channel)
        members = [{"user_id": m.user_id, "name": m.name, "connections": m.connections}
                   for m in self.presence.members(channel)]
        return reply({"channel": channel, "members": members}, request_id)

    async def history(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """history {channel, before?, limit?}: stored messages, newest first."""
        fields = _fields(data)
        room = await self._allowed(peer, fields.get("channel"))
        before, limit = fields.get("before"), fields.get("limit", 50)
        if before is not None and not isinstance(before, str):
            raise ValidationError("before must be a message id (a string)")
        if type(limit) is not int or not 1 <= limit <= MAX_HISTORY:
            raise ValidationError(f"limit must be a whole number from 1 to {MAX_HISTORY}")
        messages = await self.messages.history(room, before, limit)
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
