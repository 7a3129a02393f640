"""Checks the database and announces when the server's health flips."""

from __future__ import annotations

import asyncio
import logging

from tornado.ioloop import PeriodicCallback

from models.db import Runner, db
from services.notifier import Notifier

__all__ = ["HealthMonitor"]

log = logging.getLogger("health")


def _ping_database() -> None:
    db.execute_sql("SELECT 1").fetchone()


class HealthMonitor:
    """Keeps the latest health status; re-checks periodically and on every /health request."""

    def __init__(
        self, run: Runner, notifier: Notifier, interval: float, timeout: float = 3.0
    ) -> None:
        self.run = run
        self.notifier = notifier
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
            self.notifier.health_changed(status, previous, checks)
        return status, checks

    def start(self) -> None:
        """Starts periodic checks on the current IOLoop."""
        self._periodic = PeriodicCallback(self.check, self.interval * 1000)
        self._periodic.start()

    def stop(self) -> None:
        """Stops periodic checks."""
        if self._periodic is not None:
            self._periodic.stop()
