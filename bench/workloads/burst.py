"""The burst workload: K alerts published in one IOLoop iteration to every connection.

The product publishes them from its outbox (the harness commits K rows in one transaction and
the relay's poll publishes them in one drain); the `websockets` peer and the floor get the K
alert texts in one control message and broadcast them in a row.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["BURST_SERVERS", "burst_phase"]

BURST_SERVERS = ("product", "websockets", "floor")


async def burst_phase(run: Any, bursts: int, per_burst: int) -> dict[str, Any]:
    """Sends bursts of per_burst alerts, each once the one before has been received in full,
    and measures the server's CPU per delivered event."""
    pool = run.pool
    await pool.all({"cmd": "reset"})
    recipients = (await pool.stats())["open_recording"]
    cpu0, began, done = run.cpu(), time.time(), 0
    for b in range(bursts):
        if run.time_left() < 20:
            break
        await run.trigger.burst(10_000_000 + b * per_burst, per_burst)
        done += 1
        await pool.wait_received(done * per_burst * recipients, limit=30, stall=30)
    st = await pool.stats()
    cpu, delivered = run.cpu() - cpu0, st["received"]
    return {"bursts": done, "events_per_burst": per_burst, "recipients_per_event": recipients,
            "delivered": delivered, "expected": done * per_burst * recipients,
            "wall_s": max(st["last_recv"], began) - began, "server_cpu_s": cpu,
            "cpu_us_per_msg": 1e6 * cpu / delivered if delivered else None,
            "how": ("outbox rows published by the relay's poll in one drain"
                    if run.name == "product" else "broadcast() called per event for one "
                    "control message")}
