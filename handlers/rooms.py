"""REST handlers for rooms, their members and messages, and who is online."""

from __future__ import annotations

from handlers.base import ApiHandler
from hub.presence import ONLINE
from services import validation as v
from services.messages import before_cursor

__all__ = ["RoomsHandler", "RoomHandler", "RoomMembersHandler", "RoomMemberHandler",
           "RoomMessagesHandler", "PresenceHandler"]


class RoomsHandler(ApiHandler):
    """GET /api/v1/rooms (public rooms and the caller's; admins: all), POST creates one."""

    async def get(self) -> None:
        self.ok({"rooms": await self.ctx.rooms.list(await self.principal())})

    async def post(self) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.rooms.create(actor, self.json_body()), status=201)


class RoomHandler(ApiHandler):
    """GET and DELETE /api/v1/rooms/{name}."""

    async def get(self, name: str) -> None:
        self.ok(await self.ctx.rooms.get(await self.principal(), name))

    async def delete(self, name: str) -> None:
        self.ok(await self.ctx.rooms.delete(await self.principal(), name))


class RoomMembersHandler(ApiHandler):
    """GET /api/v1/rooms/{name}/members, POST {"user_id"} adds one (owner or admin)."""

    async def get(self, name: str) -> None:
        self.ok({"members": await self.ctx.rooms.members(await self.principal(), name)})

    async def post(self, name: str) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.rooms.add_member(actor, name, self.json_body()), status=201)


class RoomMemberHandler(ApiHandler):
    """DELETE /api/v1/rooms/{name}/members/{user_id}: owner, admin, or the member leaving."""

    async def delete(self, name: str, user_id: str) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.rooms.remove_member(actor, name, int(user_id)))


class RoomMessagesHandler(ApiHandler):
    """GET /api/v1/rooms/{name}/messages?before=&limit=: stored messages, newest first."""

    async def get(self, name: str) -> None:
        actor = await self.principal()
        limit = v.query_number(self.get_query_argument("limit", None), "limit", 50, 100)
        before = before_cursor(self.get_query_argument("before", None))
        await self.ctx.rooms.authorize(name, actor.id, actor.role)
        messages = await self.ctx.messages.history(name, before, limit)
        more = len(messages) == limit
        self.ok({"messages": messages, "next_before": messages[-1]["id"] if more else None})

    async def post(self, name: str) -> None:
        """POST {"data": {...}}: publishes to the room, as the socket's publish verb does."""
        actor = await self.principal()
        self.ok(await self.ctx.channels.post(actor, name, self.json_body()), status=201)


class PresenceHandler(ApiHandler):
    """GET /api/v1/presence: every user online and their connection count (admins)."""

    async def get(self) -> None:
        await self.admin()
        members = await self.ctx.hub.presence.fetch(ONLINE)
        self.ok({"online": [{"user_id": m.user_id, "name": m.name,
                             "connections": m.connections} for m in members]})
