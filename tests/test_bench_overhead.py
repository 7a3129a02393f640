"""bench/workloads/overhead.py: its medians and its docs section."""

from __future__ import annotations

from bench.report import render_sections
from bench.workloads.overhead import summarize


def fake_report(on: float, off: float, ratios: tuple[float, ...] = ()) -> dict:
    """Returns an overhead report with one round (or one per ratio) of one phase per setting."""
    def side(cpu: float) -> dict:
        return {"phases": [{}], "cpu_us_per_msg": cpu, "msgs_per_s": 90_000.0, "p99_ms": 120.0}
    rounds = [{"order": ["on", "off"], "on": side(on), "off": side(off), "ratio": r}
              for r in ratios or (on / off,)]
    return {"kind": "overhead", "started": "2026-11-26T15:00:00Z", "mode": "full",
            "connections": 10_000, "loadavg_start": [3.5, 3.0, 2.0], "rounds": rounds,
            "cpu_us_per_msg_on": on, "cpu_us_per_msg_off": off, "ratio": on / off,
            "micro": {"us_per_delivery_on": 0.03, "us_per_delivery_off": 0.03, "ratio": 1.0,
                      "hook_us_per_publish": 0.7, "connections": 10_000, "publishes": 200,
                      "rounds": 10}}


def test_section_shows_the_rounds_the_target_and_the_hook():
    """A round per row, the on/off target, and the hook's own cost per delivery."""
    block = render_sections(fake_report(9.3, 9.2), "overhead-2.json")["overhead"]
    assert block.startswith("## Metrics overhead")
    assert "| 1 | on, off | 9.30 | 9.20 | 1.011 |" in block and "load average 3.50" in block
    assert "| 1.01 | <= 1.03 | **met** |" in block
    assert "0.00007 us per delivery, 0.001% of a delivery" in block
    assert "Round ratios range" not in block


def test_a_wide_spread_of_round_ratios_is_called_out():
    """Round ratios further apart than the 3% being tested make the median indicative only."""
    block = render_sections(fake_report(9.3, 9.2, (0.94, 1.03)), "o.json")["overhead"]
    assert "Round ratios range from 0.940 to 1.030" in block


def test_summarize_takes_medians_of_phases():
    """A setting's numbers are the medians over its W2 phases."""
    runs = [{"cpu_us_per_msg": c, "msgs_per_s": 1.0, "latency": {"p99_ms": 2.0}}
            for c in (9.0, 12.0, 10.0)]
    assert summarize(runs) == {"cpu_us_per_msg": 10.0, "msgs_per_s": 1.0, "p99_ms": 2.0}
