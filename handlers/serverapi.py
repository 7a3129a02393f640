"""The server API (/api/v1/server/...): routes an application's services call with an API key."""

from __future__ import annotations

from handlers.base import ApiHandler
from services.idempotency import check_key

__all__ = ["NotifyHandler", "PublishHandler", "ServerPresenceHandler", "ServerHistoryHandler",
           "DisconnectHandler", "ApiKeysHandler", "ApiKeyHandler"]


class NotifyHandler(ApiHandler):
    """POST /api/v1/server/notify: an `app.*` feed event to a user, a role or everyone."""

    async def post(self) -> None:
        caller = await self.key_caller()
        key = check_key(self.request.headers.get("Idempotency-Key"))
        self.ok(await self.ctx.server_api.notify(caller, self.json_body(), key))


class PublishHandler(ApiHandler):
    """POST /api/v1/server/publish: a room message from the application."""

    async def post(self) -> None:
        caller = await self.key_caller()
        key = check_key(self.request.headers.get("Idempotency-Key"))
        self.ok(await self.ctx.server_api.publish(caller, self.json_body(), key))


class ServerPresenceHandler(ApiHandler):
    """GET /api/v1/server/presence?channel=room:NAME: who is in a room."""

    async def get(self) -> None:
        caller = await self.key_caller()
        self.ok(await self.ctx.server_api.presence(caller, self.get_query_argument("channel",
                                                                                  None)))


class ServerHistoryHandler(ApiHandler):
    """GET /api/v1/server/history?channel=room:NAME&since=OFFSET&limit=N."""

    async def get(self) -> None:
        caller = await self.key_caller()
        arg = self.get_query_argument
        self.ok(await self.ctx.server_api.history(caller, arg("channel", None),
                                                  arg("since", None), arg("limit", None)))


class DisconnectHandler(ApiHandler):
    """POST /api/v1/server/disconnect {"user_id"}: closes the user's sockets everywhere."""

    async def post(self) -> None:
        caller = await self.key_caller()
        self.ok(await self.ctx.server_api.disconnect(caller, self.json_body()))


class ApiKeysHandler(ApiHandler):
    """GET /api/v1/admin/api-keys lists the keys; POST creates one (admins)."""

    async def get(self) -> None:
        self.ok(await self.ctx.apikeys.list(await self.principal()))

    async def post(self) -> None:
        actor = await self.principal()
        self.ok(await self.ctx.apikeys.create(actor, self.json_body()), status=201)


class ApiKeyHandler(ApiHandler):
    """DELETE /api/v1/admin/api-keys/{id}: revokes a key on every node (admins)."""

    async def delete(self, key_id: str) -> None:
        actor = await self.principal()
        await self.ctx.apikeys.revoke(actor, int(key_id))
        self.ok({"id": int(key_id), "revoked": True})
