"""The paired-rounds benchmark's pieces: round order, the per-round ratios and their medians,
the verdicts, and its docs section (written in place, kept when the page is regenerated)."""

from __future__ import annotations

import pytest

from bench.paired import rotation, summarize
from bench.paired_report import (
    PAIRED_END,
    PAIRED_START,
    render_block,
    text_table,
    verdicts,
    write_block,
)
from bench.report import keep_block

SERVERS = ["product", "websockets", "floor"]


def _round(product: float, peer: float, floor: float) -> dict:
    return {"product": {"cpu_us": product}, "websockets": {"cpu_us": peer},
            "floor": {"cpu_us": floor}}


def _report() -> dict:
    # The peer's CPU swings from round to round (a noisy machine); this server's ratio to it
    # is 1.5 in every handshake round and 0.6 in every broadcast round.
    h = [_round(300.0, 200.0, 250.0), _round(600.0, 400.0, 500.0), _round(450.0, 300.0, 400.0)]
    b = [_round(6.0, 10.0, 7.0), _round(12.0, 20.0, 14.0), _round(9.0, 15.0, 10.0)]
    return {"started": "2026-11-27T01:00:00Z", "mode": "quick", "rounds": 3, "handshakes": 300,
            "broadcasts": 4, "connections": 1000, "servers": SERVERS, "peer": "websockets",
            "loadavg_start": (1.5, 1.0, 1.0), "loadavg_end": (2.0, 1.0, 1.0),
            "handshake": {"rounds": h, **summarize(h)},
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


def test_verdicts_read_issue_14s_targets_from_the_ratios():
    got = {v["name"].split(" vs ")[0]: (round(v["ratio"], 2), v["met"])
           for v in verdicts(_report())}
    assert got == {"W2 CPU per delivered message": (0.6, True),
                   "W1 CPU per handshake": (1.5, False)}
    assert [v["met"] for v in verdicts({"handshake": {}, "broadcast": {}})] == [None, None]


def test_the_docs_section_is_written_in_place_and_kept_by_a_regenerated_page(tmp_path):
    block = render_block(_report(), "paired-x.json")
    assert block.startswith(PAIRED_START) and block.endswith(PAIRED_END)
    assert "| this server (Tornado + hub) | 450 | 1.50 | 9.00 | 0.60 |" in block
    assert "0.60, **met**" in block and "1.50, **MISSED**" in block
    assert "| 2 | 600 | 400 | 500 |" in block  # every round
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nresults\n\n## Reproduce\n\nmake bench\n")
    write_block(str(page), block)
    write_block(str(page), block.replace("450", "451"))  # a second run replaces the first
    text = page.read_text()
    assert text.count(PAIRED_START) == 1 and "| 451 |" in text
    assert text.index(PAIRED_END) < text.index("## Reproduce")
    regenerated = keep_block(text, "# Benchmarks\n\nnew results\n\n## Reproduce\n\nmake bench\n")
    assert regenerated.count(PAIRED_START) == 1 and "new results" in regenerated
    assert "MISSED" in text_table(_report())
