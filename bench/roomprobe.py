"""The room isolation probe: what one publish to a small room costs the server.

Three tabs of one user (tornado WebSocket clients in the orchestrator) subscribe to a small
room; the first publishes, one at a time, each as soon as all three tabs have the previous
message. Server CPU per publish is measured on the IOLoop thread (schedstat) and for the
whole process (which adds the write-behind SQLite batches on the thread pool), in rounds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ISO_ROOM", "Tab", "probe"]

ISO_ROOM = "iso"
TABS = 3


class Tab:
    """One probe connection; counts the room messages and replies it gets."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.messages = 0
        self.replies = 0
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    def on_message(self, text: str | bytes | None) -> None:
        """Counts one frame (tornado calls this for each, None on close)."""
        if text is None:
            self.errors.append("closed")
        elif '"type":"channel.message"' in text:
            self.messages += 1
        elif '"type":"reply"' in text:
            self.replies += 1
        elif '"type":"error"' in text:
            self.errors.append(str(text)[:200])
        self.changed.set()

    async def until(self, ok: Callable[[], bool], timeout: float = 10.0) -> None:
        """Waits until ok() holds; raises on a server error or after timeout."""
        stop = time.monotonic() + timeout
        while not ok():
            if self.errors:
                raise RuntimeError(f"probe tab: {self.errors[0]}")
            left = stop - time.monotonic()
            if left <= 0:
                raise TimeoutError("probe tab waited too long")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue

    def send(self, verb: str, data: dict[str, Any], request_id: int) -> None:
        """Sends one request frame."""
        self.conn.write_message(json.dumps({"id": request_id, "type": verb, "data": data},
                                           separators=(",", ":")))


async def probe(url: str, sends: int, proc_cpu: Callable[[], float],
                loop_cpu: Callable[[], float], rounds: int = 5) -> dict[str, Any]:
    """Publishes `sends` messages to the small room in rounds; returns the medians per publish."""
    from tornado.websocket import websocket_connect

    tabs = [Tab() for _ in range(TABS)]
    channel = f"room:{ISO_ROOM}"
    try:
        for tab in tabs:
            tab.conn = await asyncio.wait_for(
                websocket_connect(url, on_message_callback=tab.on_message), 10)
            tab.send("subscribe", {"channel": channel}, 1)
            await tab.until(lambda t=tab: t.replies >= 1)
        sender = tabs[0]
        seq = 0

        async def one() -> None:
            """Publishes one message and waits until every tab has it."""
            nonlocal seq
            seq += 1
            sender.send("publish", {"channel": channel, "data": {"seq": seq}}, seq + 1)
            for tab in tabs:
                await tab.until(lambda t=tab: t.messages >= seq)

        for _ in range(5):  # warm-up
            await one()
        await asyncio.sleep(0.3)
        per_round = max(1, sends // rounds)
        proc_us, loop_us, wall_ms = [], [], []
        for _ in range(rounds):
            cpu0, loop0, t0 = proc_cpu(), loop_cpu(), time.perf_counter()
            for _ in range(per_round):
                await one()
            wall = time.perf_counter() - t0
            cpu1, loop1 = proc_cpu(), loop_cpu()
            proc_us.append(1e6 * (cpu1 - cpu0) / per_round)
            loop_us.append(1e6 * (loop1 - loop0) / per_round)
            wall_ms.append(1000 * wall / per_round)
        await sender.until(lambda: sender.replies >= seq + 1)
    finally:
        for tab in tabs:
            if tab.conn is not None:
                tab.conn.close()
    return {
        "sends": per_round * rounds,
        "rounds": rounds,
        "tabs": TABS,
        "cpu_us_per_publish": statistics.median(proc_us),
        "loop_cpu_us_per_publish": statistics.median(loop_us),
        "cpu_us_per_publish_rounds": proc_us,
        "loop_cpu_us_per_publish_rounds": loop_us,
        "wall_ms_per_publish": statistics.median(wall_ms),
        "messages_at_tabs": [t.messages for t in tabs],
    }
