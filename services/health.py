"""Checks the database (and Redis, in a cluster) and announces when the server's health flips."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback

from hub import feed
from hub.feed import FeedEvent
from models.db import Runner, db
from services.outbox import Relay

__all__ = ["HealthMonitor"]

log = logging.getLogger("health")


def _ping_database() -> None:
    db.execute_sql("SELECT 1").fetchone()


class HealthMonitor:
    """Keeps the latest health status; re-checks periodically and on every /health request."""

    def __init__(
        self, run: Runner, relay: Relay, interval: float, timeout: float = 3.0,
        broker_healthy: Callable[[], bool] | None = None,
    ) -> None:
        self.run = run
        # With a shared broker (Redis): whether it is reachable; None with the memory broker.
        self.broker_healthy = broker_healthy
        self.relay = relay
        # Flips waiting to be stored and published, in order (the database may be down).
        self._announcements: list[list[FeedEvent]] = []
        self._announcing: asyncio.Future | None = None
        self.interval = interval
        self.timeout = timeout
        self.status = "ok"
        self.checks: dict[str, str] = {"database": "ok"}
        self._periodic: PeriodicCallback | None = None

    async def check(self) -> tuple[str, dict[str, str]]:
        """Runs every check now, announces a flip to admins, and returns (status, checks)."""
        try:
            await asyncio.wait_for(self.run(_ping_database), self.timeout)
            database = "ok"
        except Exception as exc:  # any failure, including a timeout, means unhealthy
            log.warning("database check failed: %s", exc or type(exc).__name__)
            database = "error"
        checks = {"database": database}
        if self.broker_healthy is not None:
            checks["redis"] = "ok" if self.broker_healthy() else "error"
        # Without Redis a node still serves its own sockets (degraded); without the
        # database it cannot authenticate anyone (error).
        status = ("error" if database != "ok" else
                  "ok" if all(v == "ok" for v in checks.values()) else "degraded")
        previous, self.status, self.checks = self.status, status, checks
        if status != previous:
            log.warning("health changed from %s to %s", previous, status)
            self._announcements.append(feed.health_changed(status, previous, checks))
            if self._announcing is None:
                self._announcing = asyncio.ensure_future(self._announce())
        return status, checks

    async def _announce(self) -> None:
        """Stores and publishes each flip through the outbox. A flip that cannot be stored
        (the database is down) is published at once without a position, so admins learn of
        the outage now; it then cannot be replayed on resume (/health has the current state)."""
        try:
            while self._announcements:
                events = self._announcements.pop(0)
                try:
                    await self.relay.emit(events)
                except Exception as exc:
                    log.warning("health.status.changed not stored (%s): sent unlogged", exc)
                    self.relay.publish_unlogged(events)
        finally:
            self._announcing = None

    def start(self) -> None:
        """Starts periodic checks on the current IOLoop."""
        self._periodic = PeriodicCallback(self.check, self.interval * 1000)
        self._periodic.start()

    def stop(self) -> None:
        """Stops periodic checks."""
        if self._periodic is not None:
            self._periodic.stop()
