"""The burst workload: K alerts published in one IOLoop iteration to every connection.

The product publishes them from its outbox: the harness commits K system.alert rows to the
server's database in one transaction, and the relay's poll (every second) publishes all of
them in one drain, that is one IOLoop iteration. The `websockets` peer gets the K alert
texts in one control message and calls its `broadcast()` K times in a row.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

__all__ = ["burst_phase", "stage_alerts", "BURST_SERVERS"]

BURST_SERVERS = ("product", "websockets", "floor")


def stage_alerts(db_path: str, first_seq: int, count: int, sent_by: int) -> None:
    """Commits count system.alert outbox rows to the product's SQLite database (blocking)."""
    from hub.codec import encode_targets
    from hub.events import dumps, now_rfc3339
    from hub.messages import ALL, FEED
    from models.db import db, init_db
    from models.outbox import OutboxEvent

    database = init_db("sqlite:///" + db_path)
    now = time.time()
    rows = [{"event_id": str(uuid.uuid4()), "stream": FEED, "type": "system.alert",
             "data": dumps({"message": "bench", "priority": "normal",
                            "metadata": {"seq": first_seq + i, "t": now}, "sent_by": sent_by}),
             "targets": encode_targets(ALL), "timestamp": now_rfc3339()}
            for i in range(count)]
    with db.connection_context(), db.atomic():
        OutboxEvent.insert_many(rows).execute()
    database.close()


async def burst_phase(run: Any, bursts: int, per_burst: int) -> dict[str, Any]:
    """Sends bursts of per_burst alerts, each after the previous one has been received in
    full, and measures the server's CPU per delivered event."""
    pool = run.pool
    await pool.all({"cmd": "reset"})
    before = await pool.stats()
    recipients = before["open_recording"]
    cpu0 = run.cpu()
    began = time.time()
    done_bursts = 0
    for b in range(bursts):
        if run.time_left() < 20:
            break
        await run.trigger.burst(10_000_000 + b * per_burst, per_burst)
        done_bursts += 1
        expected = (b + 1) * per_burst * recipients
        for _ in range(300):  # at most 30 s per burst
            st = await pool.stats()
            if st["received"] >= expected:
                break
            await asyncio.sleep(0.05)
    st = await pool.stats()
    cpu = run.cpu() - cpu0
    delivered = st["received"]
    return {
        "bursts": done_bursts,
        "events_per_burst": per_burst,
        "recipients_per_event": recipients,
        "delivered": delivered,
        "expected": done_bursts * per_burst * recipients,
        "wall_s": max(st["last_recv"], began) - began,
        "server_cpu_s": cpu,
        "cpu_us_per_msg": 1e6 * cpu / delivered if delivered else None,
        "how": ("outbox rows published by the relay's poll in one drain" if run.name == "product"
                else "broadcast() called per event for one control message"),
    }


def peer_burst_message(first_seq: int, count: int) -> str:
    """Returns the control message that makes the peer broadcast count alerts in a row."""
    import datetime as dt

    now = time.time()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    texts = [json.dumps({"type": "system.alert",
                         "data": {"message": "bench", "priority": "normal",
                                  "metadata": {"seq": first_seq + i, "t": now}, "sent_by": 1},
                         "timestamp": stamp}, separators=(",", ":")) for i in range(count)]
    return json.dumps(texts)
