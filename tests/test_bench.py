"""The benchmark harness's own tests: math, /proc parsing, frame parsing, the report and its
sections of the page, and the bare floor. No timing assertions."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from bench.loadgen.client import Client, Stats
from bench.report import markers, put_section, render_sections, write_section
from bench.report.targets import broadcast_targets
from bench.stats import (
    add_counts,
    medians,
    parse_schedstat_ns,
    parse_stat_cpu,
    parse_status_rss_kib,
    percentile,
    quantile_points,
    summarize_latencies,
)

# A real /proc/<pid>/stat line, with a command name holding a space and a ')'.
STAT_LINE = (
    "12345 (python3 x) y) S 1 12345 12345 0 -1 4194560 9000 0 0 0 "
    "250 75 0 0 20 0 3 0 123456 456789012 12000 18446744073709551615 1 1 0 0 0 0 0 "
    "16781312 16386 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0"
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 4.0
    assert percentile(data, 50) == pytest.approx(2.5)
    assert percentile(data, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(data, 101)


def test_summarize_latencies_reports_milliseconds() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms, unsorted below
    s = summarize_latencies(reversed(values))
    assert s["count"] == 100
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["max_ms"] == pytest.approx(100.0)
    assert s["mean_ms"] == pytest.approx(50.5)
    empty = summarize_latencies([])
    assert empty["count"] == 0 and math.isnan(empty["p99_ms"])


def test_quantile_points_span_min_to_max() -> None:
    pts = quantile_points([0.001, 0.002, 0.003], points=3)
    assert pts == [[0.0, 1.0], [0.5, 2.0], [1.0, 3.0]]
    assert quantile_points([], 10) == []


def test_medians_and_counts_add_up_per_key() -> None:
    rows = [{"a": 3.0, "b": None}, {"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 4.0}]
    assert medians(rows, ("a", "b")) == {"a": 2.0, "b": 2.0}  # None counts as 0
    into = {"n": 1, "xs": [1], "errors": {"a": 1}}
    add_counts(into, {"n": 2, "xs": [2], "new": 5, "id": 9, "errors": {"a": 1, "b": 2}})
    assert into == {"n": 3, "xs": [1, 2], "new": 5, "errors": {"a": 2, "b": 2}}


def test_parse_stat_cpu_counts_fields_after_the_command_name() -> None:
    assert parse_stat_cpu(STAT_LINE, clk_tck=100) == pytest.approx(3.25)
    assert parse_stat_cpu(STAT_LINE, clk_tck=250) == pytest.approx(1.3)


def test_parse_status_and_schedstat() -> None:
    status = "Name:\tpython3\nVmPeak:\t  99999 kB\nVmRSS:\t  204800 kB\nThreads:\t5\n"
    assert parse_status_rss_kib(status) == 204800
    with pytest.raises(ValueError):
        parse_status_rss_kib("Name:\tx\n")
    assert parse_schedstat_ns("1234567890 5555 77\n") == 1234567890


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    return bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big") + payload


def test_loadgen_client_parses_split_frames_and_timestamps() -> None:
    loop = asyncio.new_event_loop()
    try:
        stats = Stats()
        ready = loop.create_future()
        client = Client(stats, b"GET / HTTP/1.1\r\n\r\n", ready)
        transport = FakeTransport()
        client.connection_made(transport)
        alert = json.dumps({"type": "system.alert",
                            "data": {"metadata": {"pad": "x" * 200, "seq": 1, "t": 100.0}}},
                           separators=(",", ":")).encode()
        welcome = b'{"type":"connection.established","data":{}}'
        stream = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
                  + _frame(welcome) + _frame(alert) + _frame(b"", 9) + _frame(alert))
        for i in range(0, len(stream), 7):  # arbitrary TCP segmentation
            client.data_received(stream[i:i + 7])
        assert ready.done() and not ready.exception()
        assert stats.received == 2 and stats.other == 1
        assert stats.by_type == {"connection.established": 1}
        assert len(stats.latencies) == 2 and all(v > 0 for v in stats.latencies)
        assert transport.written[-1] == b"\x8a\x80\x00\x00\x00\x00"  # pong to the ping
        client.data_received(_frame((1013).to_bytes(2, "big") + b"slow consumer", 8))
        assert stats.close_codes == {1013: 1} and transport.closed
    finally:
        loop.close()


def test_loadgen_client_rejects_a_refused_upgrade() -> None:
    loop = asyncio.new_event_loop()
    try:
        ready = loop.create_future()
        client = Client(Stats(), b"", ready)
        transport = FakeTransport()
        client.connection_made(transport)
        client.data_received(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        assert isinstance(ready.exception(), ConnectionError) and transport.closed
    finally:
        loop.close()


def _w2(rate: float, cpu: float, p99: float) -> dict:
    lat = {"count": 10, "mean_ms": p99 / 2, "p50_ms": p99 / 3, "p90_ms": p99 / 2,
           "p99_ms": p99, "p999_ms": p99, "max_ms": p99 * 1.2}
    return {"broadcasts": 40, "broadcasts_planned": 40, "recipients_per_broadcast": 10000,
            "delivered": 400000, "expected": 400000, "msgs_per_s": rate,
            "cpu_us_per_msg": cpu, "latency": lat, "server_core_util": 0.8,
            "client_core_util": 0.5, "latency_quantiles": [[0.0, 1.0], [1.0, p99]],
            "saturated": {"msgs_per_s": rate * 0.8, "cpu_us_per_msg": cpu, "latency": lat,
                          "server_core_util": 0.95, "client_core_util": 0.95,
                          "broadcasts": 40, "broadcasts_planned": 40}}


def sample_results() -> dict:
    w1 = {"connections": 10000, "handshakes_per_s": 600.0, "rss_kib_per_conn": 14.5,
          "failed": 0, "connect_wall_s": 16.6, "rss_base_kib": 60000, "rss_idle_kib": 205000,
          "handshake_ms_mean": 40.0, "auth": "none"}
    product = {
        "workloads": {
            "W1": dict(w1, auth="JWT"),
            "W2": _w2(80000.0, 9.0, 150.0),
            "W3": {"few": {"sends": 300, "cpu_us_per_send": 4000.0,
                           "loop_cpu_us_per_send": 1000.0,
                           "events_received": {"user.updated": 900}},
                   "many": {"sends": 300, "cpu_us_per_send": 4100.0,
                            "loop_cpu_us_per_send": 1050.0,
                            "events_received": {"user.updated": 900}},
                   "ratio": 1.05, "ratio_process": 1.025, "bystanders_few": 10,
                   "bystanders_many": 10000},
            "W4": dict(_w2(60000.0, 10.0, 180.0), paused=200, rss_growth_kib=20480.0,
                       dropped_by_server=200,
                       rss_samples=[[0.0, 200000], [1.0, 220480]]),
            "W5": dict(_w2(50000.0, 12.0, 400.0), side={"logins_ok": 100, "logins_failed": 0}),
            "API1": {"requests": 400, "concurrency": 8, "requests_per_s": 900.0, "p50_ms": 7.5,
                     "p99_ms": 21.0, "cpu_us_per_request": 850.0, "delivered": 1200,
                     "expected": 1200},
        },
        "notes": [],
    }
    websockets = {"workloads": {"W1": w1, "W2": _w2(40000.0, 15.0, 300.0)}, "notes": []}
    return {
        "schema": 1, "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:05:00Z",
        "mode": "full", "duration_s": 300.0,
        "config": {"connections": 10000, "server_core": 0, "client_core": 1, "nofile": 20000,
                   "ping_interval_s": 300.0},
        "machine": {"cpu": "Test CPU", "cores": 2, "python": "3.11.9", "tornado": "6.6.1",
                    "websockets": "17.4", "node": "v20.0.0", "node_ws": "8.23.0"},
        "servers": {"product": product, "websockets": websockets},
        "targets": [],
    }


def test_broadcast_targets_ratios_and_verdicts() -> None:
    results = sample_results()
    targets = {t["id"]: t for t in broadcast_targets(results)}
    assert targets["cpu_vs_websockets"]["value"] == pytest.approx(9.0 / 15.0)
    assert targets["cpu_vs_websockets"]["met"] is True
    assert targets["rate_vs_websockets"]["value"] == pytest.approx(2.0)
    assert targets["cpu_abs"]["met"] is True
    assert targets["rss_per_conn"]["met"] is False  # 14.5 KiB, over the 9 KiB target
    assert targets["w3_ratio"]["value"] == pytest.approx(1.05)
    assert targets["w2_p99"]["met"] is True
    assert targets["w4_p99"]["value"] == pytest.approx(180.0 / 150.0)
    assert targets["w4_memory"]["value"] == pytest.approx(102.4)
    assert targets["w5_p99"]["value"] == pytest.approx(400.0 / 150.0)
    assert targets["w5_p99"]["met"] is False


def test_targets_without_a_peer_are_not_measured() -> None:
    results = sample_results()
    del results["servers"]["websockets"]
    targets = {t["id"]: t for t in broadcast_targets(results)}
    assert targets["cpu_vs_websockets"]["met"] is None
    assert targets["cpu_abs"]["met"] is True


def test_broadcast_section_has_machine_summary_targets_and_details() -> None:
    results = {**sample_results(), "kind": "run", "note": "Shared machine."}
    sections = render_sections(results, "run-x.json")
    assert list(sections) == ["broadcast"]  # no rooms, storm, wire or cluster in this run
    md = sections["broadcast"]
    assert md.startswith("## Connections and broadcasts")
    assert "raw results in `bench/results/run-x.json`" in md and "**Conditions.** Shared" in md
    assert "Test CPU" in md and "Tornado 6.6.1" in md and "websockets 17.4" in md
    assert "| this server (Tornado + hub) | 10,000 | 600 | 14.5 | 80,000 | 9.00 |" in md
    assert "websockets broadcast()" in md
    assert "**MISSED**" in md and "**met**" in md  # W5 missed, others met
    assert "Cause: the hashing threads share the IOLoop's core" in md
    assert "### W3 targeted sends" in md and "### W4 slow consumers" in md
    assert "### API1 server API notify to one user" in md
    assert "| 400 | 8 | 900 | 7.5 | 21.0 | 850 | 1200 of 1200 |" in md
    assert json.loads(json.dumps(results)) == results


def test_plots_are_drawn_and_linked_relative_to_the_page(tmp_path) -> None:
    """With an image directory the section links every plot it drew there."""
    results = {**sample_results(), "kind": "run"}
    img = tmp_path / "img"
    md = render_sections(results, "x.json", str(img), str(tmp_path / "benchmarks.md"))
    assert "![W2 server CPU per delivered message (lower is better)](img/bench-cpu.png)" in (
        md["broadcast"])
    assert (img / "bench-latency.png").stat().st_size > 0


def test_a_section_is_replaced_in_place_and_others_are_kept(tmp_path) -> None:
    """A run rewrites only its own sections: a new one goes before the hand-kept History,
    a second write replaces the first, and every other section and hand-kept line stays."""
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nintro\n\n## History\n\nkept\n\n## Reproduce\n\nsteps\n")
    write_section(str(page), "wire", "## Wire\n\nfirst")
    write_section(str(page), "paired", "## Paired\n\nfirst")
    write_section(str(page), "wire", "## Wire\n\nsecond")
    text = page.read_text()
    start, end = markers("wire")
    assert text.count(start) == 1 and text.count(end) == 1
    assert "second" in text and text.count("first") == 1  # the paired section's
    assert text.index(markers("paired")[1]) < text.index("## History")
    assert text.startswith("# Benchmarks\n\nintro\n") and text.endswith("steps\n")
    assert put_section("# B\n", "storm", "S1").endswith(f"{markers('storm')[1]}\n")


def test_burst_w2_and_handshake_targets_against_the_peer() -> None:
    """The burst CPU, the 0.7x W2 ratio and the handshake rate are checked against the peer."""
    results = sample_results()
    product = results["servers"]["product"]["workloads"]
    product["burst"] = {"cpu_us_per_msg": 4.0, "delivered": 1_000_000}
    results["servers"]["websockets"]["workloads"]["burst"] = {"cpu_us_per_msg": 10.0}
    product["W1"]["handshakes_per_s"] = 900.0
    targets = {t["id"]: t for t in broadcast_targets(results)}
    assert targets["burst_cpu"]["value"] == pytest.approx(4.0)
    assert targets["burst_cpu"]["met"] is True and "10.00 us" in targets["burst_cpu"]["detail"]
    assert targets["cpu_vs_websockets_07"]["value"] == pytest.approx(0.6)
    assert targets["cpu_vs_websockets_07"]["met"] is True
    assert targets["handshakes_vs_websockets"]["value"] == pytest.approx(1.5)
    assert targets["handshakes_vs_websockets"]["met"] is True


def test_the_handshake_target_shows_the_bare_handshake_floor() -> None:
    """W1's CPU per handshake: this server's, the peer's and the floor's, when the floor ran."""
    results = sample_results()
    for name, cpu in (("product", 300.0), ("websockets", 400.0)):
        results["servers"][name]["workloads"]["W1"]["cpu_us_per_handshake"] = cpu
    target = {t["id"]: t for t in broadcast_targets(results)}["handshake_cpu_vs_websockets"]
    assert target["value"] == pytest.approx(0.75)
    assert target["detail"] == "300 vs 400 us (10 tabs a user; the paired rounds open 3)"
    results["servers"]["floor"] = {"workloads": {"W1": {"cpu_us_per_handshake": 60.0}}}
    target = {t["id"]: t for t in broadcast_targets(results)}["handshake_cpu_vs_websockets"]
    assert target["detail"] == ("300 vs 400 us (10 tabs a user; the paired rounds open 3); bare "
                                "handshake floor 60 us (0.15x)")
    assert target["met"] is False and "floor" in target["cause"]


def test_the_handshake_target_shows_what_full_collections_took() -> None:
    """Runs that counted full garbage collections show each server's share and the ratio
    without them: the peer's 400 us held 160 us of collections, this server's 300 held 0."""
    results = sample_results()
    for name, cpu, gc in (("product", 300.0, 0.0), ("websockets", 400.0, 160.0)):
        results["servers"][name]["workloads"]["W1"].update(cpu_us_per_handshake=cpu,
                                                          gc_us_per_handshake=gc)
    target = {t["id"]: t for t in broadcast_targets(results)}["handshake_cpu_vs_websockets"]
    assert target["value"] == pytest.approx(0.75)  # the target's ratio counts all CPU
    assert target["detail"] == ("300 vs 400 us (10 tabs a user; the paired rounds open 3); "
                                "full garbage collections 0 vs 160 us of it, 1.25x without them")


def test_the_absolute_delivery_target_shows_the_send_floor() -> None:
    """W2's CPU per delivery against 10 us, beside the floor's on the same host."""
    results = sample_results()
    assert {t["id"]: t for t in broadcast_targets(results)}["cpu_abs"]["detail"] == ""
    results["servers"]["floor"] = {"workloads": {"W2": {"cpu_us_per_msg": 11.5}}}
    assert ({t["id"]: t for t in broadcast_targets(results)}["cpu_abs"]["detail"]
            == "bare send() floor 11.50 us")


def test_peer_burst_message_carries_numbered_alerts() -> None:
    """The websockets peer's burst is a JSON list of alert texts, numbered in order."""
    from bench.triggers import burst_message

    texts = json.loads(burst_message(100, 20))
    assert [json.loads(t)["data"]["metadata"]["seq"] for t in texts] == list(range(100, 120))
    assert all('"t":' in t for t in texts)  # the load generator's timestamp mark


def test_floor_reference_delivers_every_frame_in_order() -> None:
    """bench/peers/floor_server.py (the bare handshake and send() floor): a broadcast reaches
    every client once and in order, a burst in its order, also when the socket buffers are full
    (a short send's rest goes through the transport, and later frames queue behind it)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from websockets.sync.client import connect

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    peer = subprocess.Popen([sys.executable, "bench/peers/floor_server.py",
                             "--port", str(port), "--max-seconds", "30"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}"
        with connect(f"{url}/ws?token=a", max_queue=1) as a, \
                connect(f"{url}/ws?token=b", max_queue=1) as b, \
                connect(f"{url}/control") as control:
            assert json.loads(a.recv())["type"] == "connection.established"
            b.recv()
            assert a.ping(b"p").wait(timeout=5)  # a ping is ponged
            # 200 frames of 60 KiB while the clients do not read: the kernel's buffers fill,
            # so sends come up short and the rest queues in the transports.
            sent = [f"{i:04d}" + "x" * (60 << 10) for i in range(200)]
            for text in sent:
                control.send(text)
                assert control.recv() == "ok 2"
            burst = [f"burst-{i}" for i in range(5)]
            control.send(json.dumps(burst))  # broadcast one after the other, in one go
            assert control.recv() == "ok 2"
            for client in (a, b):
                got = [client.recv(timeout=30) for _ in range(len(sent) + len(burst))]
                assert [g[:4] for g in got[:200]] == [t[:4] for t in sent]
                assert got[:200] == sent and got[200:] == burst
            a.close()  # the floor answers the close, and stops sending to a
            assert a.close_code == 1000
            control.send("after")
            assert control.recv() == "ok 1" and b.recv(timeout=5) == "after"
    finally:
        peer.terminate()
        peer.communicate(timeout=10)
