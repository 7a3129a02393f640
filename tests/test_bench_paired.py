"""The paired-rounds benchmark's pieces: round order, the per-round ratios and their medians,
the targets read from them, and its docs section."""

from __future__ import annotations

import pytest

from bench.report import render_sections
from bench.report.targets import paired_targets
from bench.workloads.paired import rotation, summarize

SERVERS = ["product", "websockets", "floor"]


def _round(product: float, peer: float, floor: float) -> dict:
    return {"product": {"cpu_us": product}, "websockets": {"cpu_us": peer},
            "floor": {"cpu_us": floor}}


def _report() -> dict:
    # The peer's CPU swings from round to round (a noisy machine); this server's ratio to it
    # is 1.5 in every handshake round and 0.6 in every broadcast round.
    h = [_round(300.0, 200.0, 250.0), _round(600.0, 400.0, 500.0), _round(450.0, 300.0, 400.0)]
    b = [_round(6.0, 10.0, 7.0), _round(12.0, 20.0, 14.0), _round(9.0, 15.0, 10.0)]
    return {"kind": "paired", "started": "2026-11-27T01:00:00Z", "mode": "quick", "rounds": 3,
            "handshakes": 300, "broadcasts": 4, "connections": 1000, "servers": SERVERS,
            "peer": "websockets", "loadavg_start": (1.5, 1.0, 1.0),
            "loadavg_end": (2.0, 1.0, 1.0), "handshake": {"rounds": h, **summarize(h)},
            "broadcast": {"rounds": b, **summarize(b)}}


def test_each_round_starts_with_another_server():
    assert [rotation(SERVERS, i)[0] for i in range(4)] == ["product", "websockets", "floor",
                                                           "product"]
    assert sorted(rotation(SERVERS, 2)) == sorted(SERVERS)


def test_ratios_are_taken_within_each_round_then_the_median():
    report = _report()
    h, b = report["handshake"], report["broadcast"]
    assert h["median_cpu_us"] == {"product": 450.0, "websockets": 300.0, "floor": 400.0}
    assert h["ratio_to_peer"]["product"] == pytest.approx(1.5)
    assert b["ratio_to_peer"]["product"] == pytest.approx(0.6)
    assert b["ratio_to_peer"]["floor"] == pytest.approx(0.7)
    assert "websockets" not in h["ratio_to_peer"]


def test_a_round_without_a_value_is_left_out_of_its_ratio():
    rounds = [_round(6.0, 10.0, 7.0), {**_round(1.0, 1.0, 1.0), "product": {"cpu_us": None}}]
    out = summarize(rounds)
    assert out["ratio_to_peer"]["product"] == pytest.approx(0.6)
    assert out["median_cpu_us"]["product"] == 6.0


def test_targets_are_read_from_the_paired_ratios():
    got = {t["id"]: (round(t["value"], 2), t["met"]) for t in paired_targets(_report())}
    assert got == {"paired_broadcast": (0.6, True), "paired_handshake": (1.5, False)}
    assert [t["met"] for t in paired_targets({"handshake": {}, "broadcast": {}})] == [None, None]


def test_the_delivery_target_shows_the_floor_and_a_miss_its_cause():
    report = _report()
    assert paired_targets(report)[0]["detail"] == "bare send() floor 0.70x"
    report["broadcast"]["ratio_to_peer"] = {"product": 0.74, "floor": 0.74}
    broadcast = paired_targets(report)[0]
    assert broadcast["met"] is False and "one send() per socket" in broadcast["cause"]
    assert paired_targets({"handshake": {}, "broadcast": {}})[0]["detail"] == "not measured"


def test_the_handshake_target_shows_the_bare_handshake_floor():
    handshake = paired_targets(_report())[1]  # the floor's rounds: 1.25x, 1.25x, 1.33x the peer
    assert handshake["detail"] == "bare handshake floor 1.25x"
    assert handshake["met"] is False and "floor" in handshake["cause"]


def test_the_docs_section_shows_medians_ratios_targets_and_every_round():
    sections = render_sections(_report(), "paired-x.json")
    assert list(sections) == ["paired"]  # its servers are a list of names, not a run's
    block = sections["paired"]
    assert block.startswith("## Paired rounds")
    assert "load average 1.50 at the start, 2.00 at the end" in block
    assert "| this server (Tornado + hub) | 450 | 1.50 | 9.00 | 0.60 |" in block
    assert "| 0.60 | <= 0.70 | **met** |" in block and "| 1.50 | <= 0.67 | **MISSED** |" in block
    assert "| 2 | 600 | 400 | 500 |" in block  # every round
