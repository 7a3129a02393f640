"""The cluster workloads' report side: targets and the section. No timing assertions
(bench/workloads/cluster.py itself runs in `make bench`)."""

from __future__ import annotations

from bench.report import render_sections
from bench.report.targets import cluster_targets

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
