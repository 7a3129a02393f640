"""The wire-formats benchmark's pieces: the load generator's protobuf and deflate frames, the
deflate target and the report section."""

from __future__ import annotations

import asyncio

from test_bench import FakeTransport, _frame

from bench.loadgen.client import Client, Stats
from bench.report import render_sections
from bench.report.targets import wire_targets
from bench.workloads.wire import PAYLOADS, VARIANTS
from hub.events import DEFLATE, PROTOBUF, Event


def _alert(pad: str) -> Event:
    return Event("system.alert", {"message": "bench", "priority": "normal",
                                  "metadata": {"pad": pad, "seq": 1, "t": 100.0}, "sent_by": 1},
                 "2026-11-26T10:30:00.000Z")


def test_loadgen_counts_binary_protobuf_and_inflates_compressed_frames() -> None:
    """Protobuf frames (binary) and RSV1 frames count like JSON ones, with their wire bytes."""
    loop = asyncio.new_event_loop()
    try:
        stats = Stats()
        client = Client(stats, b"GET / HTTP/1.1\r\n\r\n", loop.create_future())
        client.connection_made(FakeTransport())
        frames = [_alert("x" * 600).encode().frame_for(v) for v in (PROTOBUF | DEFLATE,
                                                                    PROTOBUF, DEFLATE)]
        assert frames[0][0] == 0xC2 and frames[1][0] == 0x82 and frames[2][0] == 0xC1
        stream = (b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: "
                  b"permessage-deflate; server_no_context_takeover\r\n\r\n"
                  + _frame(b'{"type":"connection.established"}') + b"".join(frames))
        for i in range(0, len(stream), 50):
            client.data_received(stream[i:i + 50])
        assert stats.received == 3 and stats.other == 1
        assert stats.wire_bytes == sum(len(f) for f in frames)
        assert len(stats.latencies) == 3
    finally:
        loop.close()


def test_loadgen_counts_sse_events_by_their_timestamp() -> None:
    """An SSE listener counts each event carrying a send timestamp, split across reads."""
    from bench.loadgen.client import SseClient
    from hub.events import SSE

    loop = asyncio.new_event_loop()
    try:
        stats = Stats()
        client = SseClient(stats, b"GET /sse HTTP/1.1\r\n\r\n", loop.create_future())
        client.connection_made(FakeTransport())
        events = [_alert(str(n)).encode().frame_for(SSE) for n in range(3)]
        stream = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 2000\n\n"
                  + b'event: connection.established\ndata: {"type":"x"}\n\n' + b"".join(events))
        for i in range(0, len(stream), 7):
            client.data_received(stream[i:i + 7])
        assert client.upgraded and stats.received == 3 and stats.other == 2
        assert stats.wire_bytes == sum(len(e) for e in events)
    finally:
        loop.close()


def _cell(us: float, size: float) -> dict:
    return {"cpu_us_per_msg": us, "bytes_per_event": size, "msgs_per_s": 1000.0,
            "p99_ms": 5.0, "rounds": [], "delivered": 10, "expected": 10}


def _report() -> dict:
    server = {"connections": 100, **{v: {s: _cell(10.0 if "deflate" not in v else 12.0,
                                                  900.0 if "deflate" not in v else 300.0)
                                         for s in PAYLOADS} for v in VARIANTS}}
    return {"kind": "wire", "started": "2026-11-26T17:00:00Z", "mode": "quick", "rounds": 1,
            "phases": 1, "broadcasts": 20, "payload_bytes": {"w2": 0, "1k": 1024},
            "loadavg_start": (1.0, 1.0, 1.0),
            "servers": {"product": server, "websockets": {"error": "RuntimeError: boom"}},
            "micro": {s: {v: 5.0 for v in VARIANTS} for s in PAYLOADS}}


def test_targets_compare_deflate_with_plain_per_format() -> None:
    """The 1.5x target is computed per format from this server's 1 KiB cells."""
    rows = wire_targets(_report())
    assert [round(r["value"], 2) for r in rows] == [1.2, 1.2, 1.0] and all(r["met"] for r in rows)
    assert rows[2]["id"] == "wire_sse" and rows[2]["limit"] == 1.3
    assert wire_targets({"servers": {"product": {"error": "x"}}}) == []


def test_wire_section_shows_every_cell_and_a_failed_server() -> None:
    """A failed peer leaves its cells empty and says why; this server's cells are all there."""
    block = render_sections(_report(), "wire-x.json")["wire"]
    assert block.startswith("## Wire formats: JSON vs protobuf, permessage-deflate on vs off")
    assert "| +1 KiB text | json+deflate | 12.00 | - |" in block
    assert "websockets: failed (RuntimeError: boom)" in block
    assert "deflate costs **1.20x** the CPU per delivery and sends 33% of the bytes" in block
    assert "| W2 alert | 5.0 | 5.0 | 5.0 | 5.0 | 5.0 |" in block  # the in-process timings
    assert "an SSE stream costs **1.00x** the CPU per delivery of a JSON WebSocket" in block
