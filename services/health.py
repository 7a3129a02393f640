"""Checks the database and announces when the server's health flips."""

from __future__ import annotations

import asyncio
import logging

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
        self, run: Runner, relay: Relay, interval: float, timeout: float = 3.0
    ) -> None:
        self.run = run
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
        status = "ok" if all(v == "ok" for v in checks.values()) else "error"
        previous, self.status, self.checks = self.status, status, checks
        if status != previous:
            log.warning("health changed from %s to %s", previous, status)
            self._announcements.append(feed.health_changed(status, previous, checks))
            if self._announcing is None:
                self._announcing = asyncio.ensure_future(self._announce())
        return status, checks

    async def _announce(self) -> None:
        """Stores and publishes each flip through the outbox, retrying while the database
        is down (so a flip to "error" caused by the database reaches admins once it is back)."""
        try:
            while self._announcements:
                try:
                    await self.relay.emit(self._announcements[0])
                except Exception as exc:
                    log.warning("health.status.changed not stored yet: %s", exc)
                    await asyncio.sleep(min(self.interval, 5.0))
                    continue
                self._announcements.pop(0)
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
