"""REST handlers for register, login, refresh and logout."""

from __future__ import annotations

from handlers.base import ApiHandler

__all__ = ["RegisterHandler", "LoginHandler", "RefreshHandler", "LogoutHandler"]


class RegisterHandler(ApiHandler):
    """POST /api/v1/auth/register: creates a `user` account and returns its tokens."""

    async def post(self) -> None:
        self.ok(await self.ctx.auth.register(self.json_body(), self.request.remote_ip), 201)


class LoginHandler(ApiHandler):
    """POST /api/v1/auth/login: exchanges email and password for tokens."""

    async def post(self) -> None:
        self.ok(await self.ctx.auth.login(self.json_body(), self.request.remote_ip))


class RefreshHandler(ApiHandler):
    """POST /api/v1/auth/refresh: rotates a refresh token."""

    async def post(self) -> None:
        self.ok(await self.ctx.auth.refresh(self.json_body()))


class LogoutHandler(ApiHandler):
    """POST /api/v1/auth/logout: revokes the caller's session."""

    async def post(self) -> None:
        await self.ctx.auth.logout(await self.principal())
        self.ok({"message": "logged out"})
