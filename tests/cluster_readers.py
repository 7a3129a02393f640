"""Many resuming readers in one process, for the node-kill test (run as a script).

Each reader connects to the first port, records the numbered `system.alert` events it gets
(checking each number arrives once, in order), and when its socket dies reconnects to the
next port with `since`/`epoch`. It stops at the alert `end:<count>`. The process prints
`ready` once every reader is connected, then one JSON summary line.

    python tests/cluster_readers.py --ports 8081,8082 --count 250 --token T
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from tornado.websocket import websocket_connect

NOISE = ("user.online", "user.offline", "health.status.changed")


class Reader:
    """One client: its numbers, its position and its resumes."""

    def __init__(self, ports: list[int], token: str) -> None:
        self.ports, self.token = ports, token
        self.seen: list[int] = []
        self.errors: list[str] = []
        self.position: dict[str, str] = {}
        self.resumes: list[dict[str, Any]] = []
        self.expected: int | None = None

    async def connect(self, port: int) -> Any:
        query = f"token={self.token}"
        if self.position:
            query += f"&since={self.position['offset']}&epoch={self.position['epoch']}"
        conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws?{query}",
                                       connect_timeout=20)
        welcome = json.loads(await asyncio.wait_for(conn.read_message(), 30))
        data = welcome["data"]
        if self.position:
            self.resumes.append({"recovered": data["recovered"], "missed": data["missed"]})
        self.position = {"epoch": data["epoch"], "offset": data["offset"]}
        return conn

    async def run(self, connected: asyncio.Future) -> None:
        conn = await self.connect(self.ports[0])
        connected.set_result(None)
        hop = 0
        while self.expected is None:
            message = await conn.read_message()
            if message is None:  # the node died: resume on the next one
                hop += 1
                for attempt in range(100):
                    try:
                        conn = await self.connect(self.ports[min(hop, len(self.ports) - 1)])
                        break
                    except Exception:
                        await asyncio.sleep(0.05 * min(attempt + 1, 20))
                else:
                    self.errors.append("could not reconnect")
                    return
                continue
            event = json.loads(message)
            if event["type"] in NOISE:
                continue
            if event["type"] != "system.alert":
                self.errors.append(f"unexpected {event['type']}")
                continue
            self.position["offset"] = event["offset"]
            text = event["data"]["message"]
            if text.startswith("end:"):
                self.expected = int(text[4:])
                break
            self.seen.append(int(text))
        conn.close()

    def summary(self) -> dict[str, Any]:
        expected = list(range(self.expected or 0))
        seen = set(self.seen)
        pairs = zip(self.seen, self.seen[1:], strict=False)
        return {"complete": self.seen == expected and not self.errors,
                "gaps": len(set(expected) - seen),
                "duplicates": len(self.seen) - len(seen),
                "out_of_order": sum(1 for a, b in pairs if b <= a),
                "resumed": len(self.resumes),
                "recovered": sum(1 for r in self.resumes if r["recovered"]),
                "errors": self.errors[:3]}


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",")]
    readers = [Reader(ports, args.token) for _ in range(args.count)]
    loop = asyncio.get_running_loop()
    connected = [loop.create_future() for _ in readers]
    tasks = []
    for reader, done in zip(readers, connected, strict=True):
        tasks.append(asyncio.ensure_future(reader.run(done)))
        await asyncio.sleep(0.002)  # no connect storm of the test's own making
    await asyncio.wait_for(asyncio.gather(*connected), 60)
    print("ready", flush=True)
    await asyncio.wait(tasks, timeout=args.timeout)
    summaries = [r.summary() for r in readers]
    print(json.dumps({
        "clients": len(readers),
        "complete": sum(s["complete"] for s in summaries),
        "gaps": sum(s["gaps"] for s in summaries),
        "duplicates": sum(s["duplicates"] for s in summaries),
        "out_of_order": sum(s["out_of_order"] for s in summaries),
        "resumed": sum(s["resumed"] for s in summaries),
        "recovered": sum(s["recovered"] for s in summaries),
        "unfinished": sum(1 for t in tasks if not t.done()),
        "errors": [s["errors"] for s in summaries if s["errors"]][:3],
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
