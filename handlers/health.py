"""GET /health: the server's and the database's status."""

from __future__ import annotations

from handlers.base import ApiHandler

__all__ = ["HealthHandler"]


class HealthHandler(ApiHandler):
    """Answers 200 {"status": "ok", "checks": {...}} or 503 with the failing check."""

    async def get(self) -> None:
        status, checks = await self.ctx.health.check()
        self.set_status(200 if status == "ok" else 503)
        self.finish({"status": status, "checks": checks})
