"""The cluster workloads' report side: targets and the sections; and C4 (`--workers 2` vs 1)
run in quick mode. No timing assertions (bench/workloads/cluster.py runs in `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cluster import need_redis_server
from conftest import IN_CI
from serverproc import ROOT

from bench.report import render_sections
from bench.report.targets import cluster_targets
from bench.workloads.cluster import POSTGRES_ADMIN

LAT = {"p50_ms": 5.0, "p99_ms": 20.0}


def _results(ratio: float = 1.1, gaps: int = 0, all_recovered: bool = True) -> dict:
    phase = {"cpu_us_per_msg": 10.0, "msgs_per_s": 90000.0, "p99_ms": 100.0}
    return {"kind": "run", "started": "2026-11-26T00:00:00Z", "mode": "quick", "config": {},
            "cluster": {
                "broker_cost": {"rounds": [{"order": ["memory", "redis"], "memory": phase,
                                            "redis": {**phase, "cpu_us_per_msg": 10 * ratio},
                                            "ratio": ratio}],
                                "cpu_us_per_msg_memory": 10.0,
                                "cpu_us_per_msg_redis": 10 * ratio, "ratio": ratio},
                "two_nodes": {"recipients": [100, 100], "broadcasts": 5, "delivered": [500, 500],
                              "expected": [500, 500], "msgs_per_s": 1000.0,
                              "cpu_us_per_msg": [11.0, 9.0], "redis_cpu_us_per_broadcast": 80,
                              "local": LAT, "cross": LAT},
                "kill_node": {"clients": 100, "clients_cut": 50, "recovered_clients": 50,
                              "not_recovered": 0, "recovery_p50_s": 0.5, "recovery_p99_s": 1.5,
                              "all_recovered_s": 1.6 if all_recovered else None,
                              "all_recovered": all_recovered, "replayed": 70,
                              "published": 40, "gaps": gaps, "duplicates": 0,
                              "out_of_order": 0}}}


def test_targets_hold_the_broker_ratio_and_an_exact_recovery():
    """C1 over 1.3x misses; any gap or an incomplete recovery in C3 misses."""
    ok = {t["id"]: t["met"] for t in cluster_targets(_results())}
    assert ok == {"cluster_broker_ratio": True, "cluster_kill_exact": True}
    assert not cluster_targets(_results(ratio=1.31))[0]["met"]
    assert not cluster_targets(_results(gaps=1))[1]["met"]
    assert not cluster_targets(_results(all_recovered=False))[1]["met"]
    assert cluster_targets({"cluster": {}}) == []


def test_section_reports_each_workload_or_its_failure():
    """The section has the three tables and the targets, and a failed step says why."""
    text = render_sections(_results(), "run-x.json")["cluster"]
    assert text.startswith("## Cluster (C1-C3)")
    assert "| 1 | memory, redis | 10.00 | 11.00 | 1.100 |" in text and "cross-node" in text
    assert "| 100 | 50 | 50 / 0 |" in text
    assert "| C1 CPU per delivery, Redis vs memory broker | 1.10 | <= 1.30 | **met** |" in text
    failed = _results()
    failed["cluster"]["two_nodes"] = {"error": "RuntimeError: node1 exited early"}
    text = render_sections(failed, "run-x.json")["cluster"]
    assert "C2 failed: RuntimeError: node1 exited early" in text and "C3: node A" in text


def _workers(error: str = "") -> dict:
    """A run with C4's results only: one round, 2 workers after 1."""
    one = {"handshakes_per_s": 1000.0, "cpu_us_per_handshake": 800.0, "msgs_per_s": 20000.0,
           "cpu_us_per_msg": 20.0, "p99_ms": 90.0}
    two = {"handshakes_per_s": 1500.0, "cpu_us_per_handshake": 820.0, "msgs_per_s": 36000.0,
           "cpu_us_per_msg": 21.0, "p99_ms": 80.0}
    w = {"clients": 600, "rounds": [{"order": ["1", "2"], "1": one, "2": two, "ratio": 1.5}],
         **{f"{k}_{n}": v for n, r in (("1", one), ("2", two)) for k, v in r.items()}}
    return {"kind": "run", "started": "2026-12-07T00:00:00Z", "mode": "quick", "config": {},
            "cluster": {}, "workers": {"error": error} if error else w}


def test_workers_section_shows_both_settings_and_two_against_one():
    """C4 has a section of its own (a run of C4 alone keeps C1-C3's): the medians of each
    setting and their ratios, 2 workers over 1; a failed C4 says why and has no table."""
    sections = render_sections(_workers(), "run-x.json")
    assert list(sections) == ["workers"]
    text = sections["workers"]
    assert text.startswith("## Every core: `--workers 2` vs `--workers 1` (C4)")
    assert "600 clients a start, medians of 1 round(s)" in text
    assert "| 1 | 1,000 | 800 | 20,000 | 20.00 |" in text
    assert "| 2 | 1,500 | 820 | 36,000 | 21.00 |" in text
    assert "| 2 vs 1 | 1.50 | 1.02 | 1.80 | 1.05 |" in text
    failed = render_sections(_workers("RuntimeError: no redis-server"), "run-x.json")["workers"]
    assert "C4 failed: RuntimeError: no redis-server" in failed and "| 2 vs 1 |" not in failed


def _need_postgres() -> None:
    """Skips (fails under CI=true) when the benchmark's PostgreSQL does not answer."""
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_ADMIN, connect_timeout=3).close()
    except psycopg2.Error as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: {exc}")


@pytest.mark.timeout(300)
def test_a_quick_c4_run_measures_one_worker_and_two(tmp_path):
    """`python -m bench.run --quick --workers-only`: a private Redis and a PostgreSQL database
    of its own; the product started with one worker, then two, takes every client and delivers
    every alert to each, and the figures the section shows are there."""
    need_redis_server()
    _need_postgres()
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--workers-only",
                           "--no-docs", "--results-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    reports = list(tmp_path.glob("run-*.json"))
    assert len(reports) == 1, done.stdout + done.stderr
    report = json.loads(reports[0].read_text())
    w = report["workers"]
    assert "error" not in w, w
    assert report["cluster"] == {}  # C1-C3 not asked for
    [row] = w["rounds"]  # quick mode: one round, one worker first
    assert row["order"] == ["1", "2"]
    for n in ("1", "2"):
        assert row[n]["connected"] == w["clients"], row[n]
        assert row[n]["delivered"] == row[n]["expected"] > 0, row[n]
        assert row[n]["cpu_us_per_handshake"] > 0 and row[n]["cpu_us_per_msg"] > 0
        assert w[f"msgs_per_s_{n}"] > 0 and w[f"handshakes_per_s_{n}"] > 0
    assert "| 2 vs 1 |" in render_sections(report, reports[0].name)["workers"]
