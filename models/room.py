"""Rooms, their members and the messages published in them."""

from __future__ import annotations

import json
from typing import Any

import peewee

from models.db import BaseModel
from models.user import User, rfc3339, utcnow

__all__ = ["Room", "RoomMember", "RoomMessage", "LOBBY"]

LOBBY = "lobby"  # exists from start-up; public


class Room(BaseModel):
    """A named room (channel `room:<name>`); private rooms admit their members only."""

    name = peewee.CharField(max_length=64, unique=True)
    title = peewee.CharField(max_length=200, default="")
    private = peewee.BooleanField(default=False)
    owner = peewee.ForeignKeyField(User, null=True, backref="rooms", on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "rooms"

    @property
    def channel(self) -> str:
        """The channel clients subscribe to."""
        return f"room:{self.name}"

    def to_public(self) -> dict[str, Any]:
        """Returns the fields a client may see."""
        return {
            "name": self.name,
            "channel": self.channel,
            "title": self.title,
            "private": self.private,
            "owner_id": self.owner_id,
            "created_at": rfc3339(self.created_at),
        }


class RoomMember(BaseModel):
    """A user admitted to a room (the owner is one too)."""

    room = peewee.ForeignKeyField(Room, backref="members", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    added_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "room_members"
        indexes = ((("room", "user"), True),)


class RoomMessage(BaseModel):
    """One published message. Ids are time-ordered strings made at publish time."""

    id = peewee.CharField(primary_key=True, max_length=32)
    # The room's name, not a key: messages are written behind the fan-out, in batches, and a
    # batch must not fail because one room was deleted meanwhile (deletion removes them).
    room = peewee.CharField(max_length=64)
    sender = peewee.ForeignKeyField(User, null=True, backref="messages", on_delete="SET NULL")
    sender_name = peewee.CharField(max_length=100)
    body = peewee.TextField()  # the JSON object as published
    created_at = peewee.DateTimeField(index=True)
    # The message's offset in its room's stream (what `since` and `history` refer to).
    offset = peewee.BigIntegerField(null=True, column_name="stream_offset")
    # The API key's name for a message published through the server API (no sender user).
    api_key = peewee.CharField(max_length=100, null=True)

    class Meta:
        table_name = "room_messages"
        indexes = ((("room", "id"), False),)

    def to_public(self) -> dict[str, Any]:
        """Returns the message as `channel.message` data carries it."""
        return {
            "id": self.id,
            "from": ({"api_key": self.api_key} if self.api_key is not None
                     else {"user_id": self.sender_id, "name": self.sender_name}),
            "body": json.loads(self.body),
            "sent_at": self.created_at.isoformat(timespec="milliseconds") + "Z",
            "offset": str(self.offset) if self.offset is not None else None,
        }
