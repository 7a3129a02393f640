"""REST handlers for admin user management (list, read, edit, delete, role)."""

from __future__ import annotations

from handlers.base import ApiHandler

__all__ = ["UsersHandler", "UserHandler", "UserRoleHandler"]


class UsersHandler(ApiHandler):
    """GET /api/v1/users?page=&per_page=: a page of users (admins)."""

    async def get(self) -> None:
        await self.admin()
        page = self.get_query_argument("page", None)
        self.ok(await self.ctx.users.list(page, self.get_query_argument("per_page", None)))


class UserHandler(ApiHandler):
    """GET, PATCH, DELETE /api/v1/users/{id} (GET also for the user themself)."""

    async def get(self, user_id: str) -> None:
        self.ok(await self.ctx.users.get(await self.principal(), int(user_id)))

    async def patch(self, user_id: str) -> None:
        actor = await self.admin()
        self.ok(await self.ctx.users.update(actor, int(user_id), self.json_body()))

    async def delete(self, user_id: str) -> None:
        actor = await self.admin()
        self.ok(await self.ctx.users.delete(actor, int(user_id)))


class UserRoleHandler(ApiHandler):
    """PUT /api/v1/users/{id}/role: changes a user's role by the role rules."""

    async def put(self, user_id: str) -> None:
        actor = await self.admin()
        self.ok(await self.ctx.users.change_role(actor, int(user_id), self.json_body()))
