"""GET /health: the server's and the database's status."""

from __future__ import annotations

from handlers.base import ApiHandler

__all__ = ["HealthHandler"]


class HealthHandler(ApiHandler):
    """Answers 200 {"status": "ok"|"degraded", "checks": {...}} or 503 with the failing check.

    `degraded` (Redis unreachable in a cluster) stays 200: the node keeps serving its sockets.
    """

    async def get(self) -> None:
        status, checks = await self.ctx.health.check()
        self.set_status(503 if status == "error" else 200)
        self.finish({"status": status, "checks": checks})
