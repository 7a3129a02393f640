"""Rooms over REST and the access rule every channel operation checks."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import peewee

from models.db import Runner, db, write_tx
from models.room import LOBBY, Room, RoomMember, RoomMessage
from models.user import ADMIN_ROLES, User, rfc3339
from services import validation as v
from services.errors import Conflict, NotFound, PermissionDenied
from services.notifier import Notifier
from services.principal import Principal

__all__ = ["RoomService", "room_name", "channel_room", "ensure_lobby", "NAME_RULE"]

NAME_RULE = "1-64 of a-z, 0-9, '_', '.', '-'"
_NAME = re.compile(r"^[a-z0-9_.-]{1,64}\Z")  # \Z: `$` would also match before a final newline
ROOM_DELETED = "room deleted"
REMOVED = "removed from room"


def room_name(value: Any, field: str = "name") -> str:
    """Returns a valid room name or raises ValidationError saying what one looks like."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise v.invalid(field, f"must be {NAME_RULE}")
    return value


def channel_room(channel: Any) -> str:
    """Returns the room name of a `room:<name>` channel, or raises ValidationError."""
    if not isinstance(channel, str) or not channel.startswith("room:"):
        raise v.invalid("channel", f"must be room:<name>, with a name of {NAME_RULE}")
    return room_name(channel[5:], "channel")


def ensure_lobby() -> None:
    """Creates the public room:lobby if it does not exist (blocking; at start-up)."""
    with db.connection_context(), write_tx():
        if not Room.select().where(Room.name == LOBBY).exists():
            Room.create(name=LOBBY, title="Lobby", private=False, owner=None)


def _load(name: str) -> Room:
    room = Room.get_or_none(Room.name == name)
    if room is None:
        raise NotFound(f"room {name!r} not found")
    return room


def _is_member(room: Room, user_id: int) -> bool:
    return RoomMember.select().where(
        (RoomMember.room == room) & (RoomMember.user == user_id)).exists()


def _check_access(room: Room, user_id: int, role: str) -> None:
    if room.private and role not in ADMIN_ROLES and not _is_member(room, user_id):
        raise PermissionDenied(f"room {room.name!r} is private: members only")


def _check_owner(room: Room, actor: Principal) -> None:
    if not actor.is_admin and room.owner_id != actor.id:
        raise PermissionDenied(f"only the owner of room {room.name!r} or an admin may do this")


class RoomService:
    """Owns rooms and memberships; tells the hub side when sockets must leave a room."""

    def __init__(self, run: Runner, notifier: Notifier, max_rooms_per_user: int) -> None:
        self.run = run
        self.notifier = notifier
        self.max_rooms_per_user = max_rooms_per_user

    async def _public(self, room: Room) -> dict[str, Any]:
        return {**room.to_public(), **await self.notifier.room_counts(room.channel)}

    async def authorize(self, name: str, user_id: int, role: str) -> None:
        """Raises NotFound or PermissionDenied unless the user may subscribe and publish."""
        await self.run(lambda: _check_access(_load(name), user_id, role))

    async def create(self, actor: Principal, body: Any) -> dict[str, Any]:
        """Creates a room owned by the caller, who becomes its first member."""
        fields = v.Fields(body, ("name", "title", "private"))
        name = fields.required("name", room_name)
        title = fields.optional("title", lambda value: v.text(value, "title", 0, 200), "")
        private = fields.optional("private", v.boolean("private"), False)
        fields.done()

        def create_tx() -> Room:
            with write_tx():
                owned = Room.select().where(Room.owner == actor.id).count()
                if owned >= self.max_rooms_per_user:
                    raise PermissionDenied(
                        f"a user may own at most {self.max_rooms_per_user} rooms")
                try:
                    with db.atomic():
                        room = Room.create(name=name, title=title, private=private,
                                           owner=actor.id)
                except peewee.IntegrityError:
                    raise Conflict(f"room {name!r} already exists") from None
                RoomMember.create(room=room, user=actor.id)
                return room

        return await self._public(await self.run(create_tx))

    async def list(self, actor: Principal) -> list[dict[str, Any]]:
        """Returns the public rooms and the caller's own; admins see every room."""
        def query() -> list[Room]:
            rooms = Room.select().order_by(Room.name)
            if actor.is_admin:
                return list(rooms)
            mine = RoomMember.select(RoomMember.room).where(RoomMember.user == actor.id)
            return list(rooms.where((Room.private == False) | (Room.id.in_(mine))))  # noqa: E712

        return list(await asyncio.gather(*(self._public(room)
                                           for room in await self.run(query))))

    async def get(self, actor: Principal, name: str) -> dict[str, Any]:
        """Returns one room the caller may see."""
        def query() -> Room:
            room = _load(name)
            _check_access(room, actor.id, actor.role)
            return room

        return await self._public(await self.run(query))

    async def delete(self, actor: Principal, name: str) -> dict[str, Any]:
        """Deletes a room (owner or admin); its subscribers are unsubscribed at once."""
        if name == LOBBY:
            raise PermissionDenied("room:lobby cannot be deleted")

        def delete_tx() -> Room:
            with write_tx():
                room = _load(name)
                _check_owner(room, actor)
                room.delete_instance()
                RoomMessage.delete().where(RoomMessage.room == name).execute()
                return room

        room = await self.run(delete_tx)
        self.notifier.room_unsubscribed(room.channel, ROOM_DELETED)
        return room.to_public()

    async def members(self, actor: Principal, name: str) -> list[dict[str, Any]]:
        """Lists a room's members (for anyone who may see the room)."""
        def query() -> list[dict[str, Any]]:
            room = _load(name)
            _check_access(room, actor.id, actor.role)
            rows = (RoomMember.select(RoomMember, User).join(User)
                    .where(RoomMember.room == room).order_by(RoomMember.user))
            return [{"user_id": m.user.id, "name": m.user.name, "owner": m.user.id == room.owner_id,
                     "added_at": rfc3339(m.added_at)} for m in rows]

        return await self.run(query)

    async def add_member(self, actor: Principal, name: str, body: Any) -> dict[str, Any]:
        """Admits a user to a room (owner or admin)."""
        fields = v.Fields(body, ("user_id",))
        user_id = fields.required("user_id", v.positive_int("user_id"))
        fields.done()

        def add_tx() -> dict[str, Any]:
            with write_tx():
                room = _load(name)
                _check_owner(room, actor)
                user = User.get_or_none(User.id == user_id)
                if user is None:
                    raise NotFound(f"user {user_id} not found")
                if _is_member(room, user_id):
                    raise Conflict(f"user {user_id} is already a member of {name!r}")
                member = RoomMember.create(room=room, user=user)
                return {"user_id": user.id, "name": user.name, "owner": False,
                        "added_at": rfc3339(member.added_at)}

        return await self.run(add_tx)

    async def remove_member(self, actor: Principal, name: str, user_id: int) -> dict[str, Any]:
        """Removes a member (owner or admin, or members themselves); a private room's sockets
        of that user are unsubscribed at once."""
        def remove_tx() -> Room:
            with write_tx():
                room = _load(name)
                if actor.id != user_id:
                    _check_owner(room, actor)
                if user_id == room.owner_id:
                    raise PermissionDenied("the owner cannot be removed; delete the room instead")
                removed = RoomMember.delete().where(
                    (RoomMember.room == room) & (RoomMember.user == user_id)).execute()
                if not removed:
                    raise NotFound(f"user {user_id} is not a member of {name!r}")
                return room

        room = await self.run(remove_tx)
        if room.private:
            self.notifier.room_unsubscribed(room.channel, REMOVED, user_id)
        return {"room": name, "user_id": user_id, "removed": True}
