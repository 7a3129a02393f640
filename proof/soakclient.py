"""The soak's client: a bench/loadgen room client (a room member when it has a room) that
records the number of every alert and room message it receives and its latency, settles the
replies to its room publishes, and leaves as a client would. Soak payloads carry their send
time as "at", not bench's "t", so the loadgen's frame parser hands every one of them to
on_text, where its number is recorded."""

from __future__ import annotations

import asyncio
import bisect
import time
from array import array

from bench.loadgen.client import Stats
from bench.loadgen.rooms import RoomClient, client_frame
from bench.loadgen.storm import parse_int_after

__all__ = ["SoakStats", "SoakClient", "parse_float_after", "interior_check", "FIRST_ID",
           "CHECKED"]

SEQ, AT, ID, CODE = b'"seq":', b'"at":', b'"id":', b'"code":"'
ROOM_MESSAGE, REPLY, ERROR = b'{"type":"channel.message"', b'{"type":"reply"', b'{"type":"error"'
CLOSE_NORMAL = client_frame((1000).to_bytes(2, "big"), opcode=8)
FIRST_ID = 1000
CHECKED = ("gaps", "duplicates", "out_of_order", "received")


def parse_float_after(buf: bytes, mark: bytes, start: int, end: int) -> float | None:
    """Returns the number right after mark in buf[start:end], or None."""
    i = buf.find(mark, start, end)
    if i < 0:
        return None
    j = k = i + len(mark)
    while k < end and buf[k] not in b",}":
        k += 1
    try:
        return float(buf[j:k])
    except ValueError:
        return None


def interior_check(seqs: array | list[int], acked: list[int]) -> dict[str, int]:
    """Checks a short-lived client's numbers: every acknowledged number between its first and
    its last must be there (what was published while it was connected), once and in order."""
    if not seqs:
        return dict.fromkeys(CHECKED, 0)
    got = set(seqs)
    inside = acked[bisect.bisect_right(acked, min(got)):bisect.bisect_left(acked, max(got))]
    return {"gaps": sum(1 for s in inside if s not in got), "duplicates": len(seqs) - len(got),
            "out_of_order": sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a),
            "received": len(seqs)}


class SoakStats(Stats):
    """The process's counters, the room publishes awaiting their reply and the answers."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[int, tuple[str, int]] = {}  # request id -> (room, number)
        self.pending_rooms: set[str] = set()  # rooms with a message awaiting its answer
        self.acked: dict[str, list[int]] = {}  # room -> numbers the server accepted
        self.refused: dict[str, int] = {}  # error code -> publishes refused with it
        self.dropped: dict[str, int] = {}  # kind -> connections lost that we did not close

    def answered(self, request_id: int, code: str | None) -> None:
        """Settles a room publish: accepted (code None) or refused with code."""
        room, seq = self.pending.pop(request_id)
        self.pending_rooms.discard(room)
        if code is None:
            self.acked.setdefault(room, []).append(seq)
        else:
            self.refused[code] = self.refused.get(code, 0) + 1


class SoakClient(RoomClient):
    """One soak connection of a kind (feed, room, churn, slow), a room member when it has a
    room; records the numbers of the alerts and room messages it receives, and their latency."""

    __slots__ = ("kind", "feed", "numbers", "born", "ours")

    def __init__(self, stats: SoakStats, request: bytes, ready: asyncio.Future, kind: str,
                 room: str) -> None:
        super().__init__(stats, request, ready, "json", room)
        self.kind, self.born, self.ours = kind, time.monotonic(), False
        self.feed, self.numbers = array("i"), array("i")  # alert numbers, room message numbers

    def on_upgraded(self) -> None:
        """Subscribes to its room (ready on the reply), or is ready at once."""
        if self.room:
            super().on_upgraded()
        elif not self.ready.done():
            self.ready.set_result(time.time())

    def connection_lost(self, exc: Exception | None) -> None:
        """Counts a loss the harness did not cause, by kind."""
        super().connection_lost(exc)
        if not self.ours:
            dropped = self.stats.dropped
            dropped[self.kind] = dropped.get(self.kind, 0) + 1

    def on_text(self, buf: bytes, start: int, end: int) -> None:
        """Records a numbered frame; settles a publish's reply or error; counts the rest."""
        seq = parse_int_after(buf, SEQ, start, end)
        if seq is not None:
            now, stats = time.time(), self.stats
            (self.numbers if buf.startswith(ROOM_MESSAGE, start) else self.feed).append(seq)
            stats.received += 1
            stats.wire_bytes += end - start
            stats.last_recv = now
            at = parse_float_after(buf, AT, start, end)
            if at is not None and self.record:
                stats.latencies.append(now - at)
            return
        is_error = buf.startswith(ERROR, start)
        if is_error or buf.startswith(REPLY, start):
            request_id = parse_int_after(buf, ID, start, end)
            if request_id in self.stats.pending:
                code = None
                if is_error:
                    i = buf.find(CODE, start, end) + len(CODE)
                    code = buf[i:buf.find(b'"', i, end)].decode("ascii", "replace")
                self.stats.answered(request_id, code)
                return
        super().on_text(buf, start, end)

    def leave(self, clean: bool) -> None:
        """Disconnects as a client would: with a close frame (clean) or a reset."""
        self.ours = True
        if self.open and self.transport is not None:
            if clean:
                self.transport.write(CLOSE_NORMAL)
                self.transport.close()
            else:
                self.transport.abort()
