"""bench/overhead.py: its docs section renders, replaces an older one, survives regeneration."""

from __future__ import annotations

from bench.overhead import render_block, summarize, write_block
from bench.report import BLOCK_END, BLOCK_START, keep_block

PAGE = "# Benchmarks\n\n## Results\n\nx\n\n## Reproduce\n\nmake bench\n"


def fake_report(on: float, off: float) -> dict:
    """Returns an overhead report with one round of one phase per setting."""
    def side(cpu: float) -> dict:
        return {"phases": [{}], "cpu_us_per_msg": cpu, "msgs_per_s": 90_000.0, "p99_ms": 120.0}
    return {"started": "2026-11-26T15:00:00Z", "mode": "full", "connections": 10_000,
            "machine": {}, "loadavg_start": [3.5, 3.0, 2.0],
            "rounds": [{"order": ["on", "off"], "on": side(on), "off": side(off),
                        "ratio": on / off}],
            "cpu_us_per_msg_on": on, "cpu_us_per_msg_off": off, "ratio": on / off}


def test_block_is_written_before_reproduce_and_replaced_by_a_newer_one(tmp_path):
    """write_block() inserts the section before Reproduce and a second run replaces it."""
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    write_block(str(page), render_block(fake_report(9.5, 9.4), "overhead-1.json"))
    write_block(str(page), render_block(fake_report(9.3, 9.2), "overhead-2.json"))
    text = page.read_text()
    assert text.count(BLOCK_START) == 1 and text.count(BLOCK_END) == 1
    assert "overhead-2.json" in text and "overhead-1.json" not in text
    assert text.index(BLOCK_END) < text.index("## Reproduce")
    assert "| 1 | on, off | 9.30 | 9.20 | 1.011 |" in text and "3.50 3.00 2.00" in text


def test_regenerated_page_keeps_the_block():
    """keep_block() carries the section from the old page into a freshly rendered one."""
    old = PAGE.replace("## Reproduce", render_block(fake_report(10, 10), "o.json") + "\n\n"
                       "## Reproduce")
    assert "on/off 1.000" in keep_block(old, PAGE).replace("**", "")
    assert keep_block(PAGE, PAGE) == PAGE


def test_summarize_takes_medians_of_phases():
    """A setting's numbers are the medians over its W2 phases."""
    runs = [{"cpu_us_per_msg": c, "msgs_per_s": 1.0, "latency": {"p99_ms": 2.0}}
            for c in (9.0, 12.0, 10.0)]
    assert summarize(runs) == {"cpu_us_per_msg": 10.0, "msgs_per_s": 1.0, "p99_ms": 2.0}


def test_regenerated_page_keeps_the_hot_path_block():
    """The hand-kept before/after comparison survives a regeneration of the page."""
    from bench.report import HOT_END, HOT_START

    block = f"{HOT_START}\n## Hot path\n\n| a | b |\n{HOT_END}"
    old = PAGE.replace("## Reproduce", block + "\n\n## Reproduce")
    kept = keep_block(old, PAGE)
    assert kept.count(HOT_START) == 1 and kept.index(HOT_END) < kept.index("## Reproduce")
    assert keep_block(kept, kept) == kept
