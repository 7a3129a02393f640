"""bench/workloads/hooks.py: its section, from a report of its own and from a run's part."""

from __future__ import annotations

from bench.report import render_sections


def fake_hooks(off: float, on: float) -> dict:
    """Returns a hooks report of one round: R1 with the publish hook off, then on."""
    def side(cpu: float, p99: float) -> dict:
        return {"published": 1800, "delivered": 45000, "expected": 45000,
                "cpu_us_per_publish": cpu, "p99_ms": p99}
    return {"kind": "hooks", "started": "2026-12-06T22:00:00Z", "mode": "full",
            "loadavg_start": [1.5, 1.0, 1.0], "rooms": 40, "members": 25, "hook_calls": 1800,
            "rounds": [{"order": ["off", "on"], "off": side(off, 12.0), "on": side(on, 14.5),
                        "ratio": on / off}],
            "cpu_us_per_publish_off": off, "cpu_us_per_publish_on": on, "ratio": on / off,
            "p99_ms_off": 12.0, "p99_ms_on": 14.5}


def test_section_shows_each_round_and_the_medians():
    """A row per round with both settings' CPU per publish, the ratio, p99 and counts."""
    block = render_sections(fake_hooks(800.0, 1300.0), "hooks-1.json")["hooks"]
    assert block.startswith("## Permission hooks (R1 publishes")
    assert "| 1 | off, on | 800 | 1,300 | 12.0 | 14.5 | 1,800 | 1,800 | 1.62 |" in block
    assert "(1.62x)" in block and "1,800 hook calls answered" in block
    assert "40 rooms x 25 members" in block and "load average 1.50" in block


def test_a_run_renders_its_hooks_part():
    """`make bench` (and `make bench-hooks`, its --hooks-only) keeps the part under
    results["hooks"] and writes its section."""
    run = {"kind": "run", "started": "2026-12-06T22:00:00Z", "mode": "full",
           "hooks": fake_hooks(800.0, 1000.0)}
    assert render_sections(run, "run-1.json")["hooks"].startswith("## Permission hooks")


def test_a_failed_setting_leaves_the_round_without_a_ratio():
    """A server that failed one setting is shown with dashes, not a made-up ratio."""
    report = fake_hooks(800.0, 1300.0)
    report["rounds"][0]["on"] = {"error": "RuntimeError: boom"}
    del report["rounds"][0]["ratio"]
    block = render_sections(report, "hooks-2.json")["hooks"]
    assert "| 1 | off, on | 800 | - | 12.0 | - | 1,800 | - | - |" in block
