"""The admin-only views and actions on the hub: GET /ws/stats and POST /ws/broadcast."""

from __future__ import annotations

from handlers.base import ApiHandler

__all__ = ["StatsHandler", "BroadcastHandler"]


class StatsHandler(ApiHandler):
    """GET /ws/stats: the hub's stats object (summed over the cluster's nodes, each node in
    `nodes`), plus this node's `delivery` and the `webhooks` queue for the dashboard
    (admins)."""

    async def get(self) -> None:
        await self.admin()
        stats = await self.ctx.stats.collect()
        self.finish({**stats, "delivery": self.ctx.metrics.delivery_summary(),
                     "webhooks": self.ctx.webhooks.summary()})


class BroadcastHandler(ApiHandler):
    """POST /ws/broadcast: sends a system.alert to every connection (admins)."""

    async def post(self) -> None:
        actor = await self.admin()
        recipients = await self.ctx.alerts.broadcast(actor, self.json_body())
        self.finish({
            "success": True,
            "message": "Broadcast sent successfully",
            "recipients": recipients,
            "stats": await self.ctx.stats.collect(),
        })
