"""REST handlers for the caller's own profile and password."""

from __future__ import annotations

from handlers.base import ApiHandler

__all__ = ["MeHandler", "MePasswordHandler"]


class MeHandler(ApiHandler):
    """GET and PATCH /api/v1/users/me: the caller's own profile."""

    async def get(self) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.users.get(actor, actor.id))

    async def patch(self) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.users.update(actor, actor.id, self.json_body()))


class MePasswordHandler(ApiHandler):
    """POST /api/v1/users/me/password: changes the password and returns new tokens."""

    async def post(self) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.auth.change_password(actor, self.json_body()))
