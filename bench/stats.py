"""Pure helpers (percentiles, latency summaries, medians, counters) and the /proc readers."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["percentile", "summarize_latencies", "quantile_points", "medians", "add_counts",
           "parse_stat_cpu", "parse_status_rss_kib", "parse_schedstat_ns", "proc_cpu_seconds",
           "proc_runtime_seconds", "proc_rss_kib", "full_collections", "CLK_TCK"]

CLK_TCK = os.sysconf("SC_CLK_TCK")  # the harness reads /proc: Linux only


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Returns the q-th percentile of sorted values (numpy's "linear"), or NaN."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = q / 100.0 * (n - 1)
    low = int(math.floor(rank))
    high = min(low + 1, n - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize_latencies(values: Iterable[float]) -> dict[str, float | int]:
    """Returns count, mean, p50, p90, p99, p99.9 and max of latencies given in seconds, as ms."""
    data = sorted(values)
    return {"count": len(data), "mean_ms": 1000.0 * sum(data) / len(data) if data else math.nan,
            **{f"{name}_ms": 1000.0 * percentile(data, q) for name, q in (
                ("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100))}}


def quantile_points(values: Iterable[float], points: int = 200) -> list[list[float]]:
    """Returns [[quantile 0..1, value in ms], ...] spread evenly, small enough for the JSON."""
    data = sorted(values)
    if not data or points < 2:
        return []
    return [[round(q, 5), round(1000.0 * percentile(data, 100.0 * q), 4)]
            for q in (i / (points - 1) for i in range(points))]


def medians(rows: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, float]:
    """Returns the median of each key over rows (a missing or None value counts as 0)."""
    return {k: statistics.median(r.get(k) or 0.0 for r in rows) for k in keys}


def add_counts(into: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    """Adds counts into into, key by key (lists concatenate, dicts recurse)."""
    for k, v in counts.items():
        if isinstance(v, dict):
            into[k] = add_counts(into.get(k, {}), v)
        elif k != "id":
            into[k] = into.get(k, [] if isinstance(v, list) else 0) + v
    return into


def parse_stat_cpu(stat_line: str, clk_tck: int = CLK_TCK) -> float:
    """Returns utime + stime in seconds from one /proc/<pid>/stat line (fields 14 and 15,
    counted after the command name, which may hold spaces or ')')."""
    rest = stat_line[stat_line.rindex(")") + 2:].split()
    return (int(rest[14 - 3]) + int(rest[15 - 3])) / float(clk_tck)


def parse_status_rss_kib(status_text: str) -> int:
    """Returns VmRSS in KiB from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])  # the kernel always writes kB
    raise ValueError("no VmRSS line in status text")


def parse_schedstat_ns(text: str) -> int:
    """Returns the on-CPU time in ns from a /proc/<pid>/task/<tid>/schedstat line."""
    return int(text.split()[0])


def proc_cpu_seconds(pid: int) -> float:
    """Returns the process's user + system CPU time (all threads) from /proc/<pid>/stat."""
    return parse_stat_cpu(Path(f"/proc/{pid}/stat").read_text("ascii", "replace"))


def proc_runtime_seconds(pid: int) -> float:
    """Returns the on-CPU seconds of the process's threads (ns resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # the thread ended in between
            total += parse_schedstat_ns(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text())
    return total / 1e9


def proc_rss_kib(pid: int) -> int:
    """Returns the process's resident set size in KiB from /proc/<pid>/status."""
    return parse_status_rss_kib(Path(f"/proc/{pid}/status").read_text("ascii", "replace"))


def full_collections(prefix: str) -> tuple[int, float]:
    """Returns the full garbage collections and their CPU seconds so far of the processes that
    bench/gcwatch watches under prefix (each one's last `<prefix>.<pid>` line), summed."""
    count, seconds = 0, 0.0
    folder, name = os.path.split(prefix)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(folder or "."):
            if not entry.startswith(f"{name}."):
                continue
            text = ""
            with contextlib.suppress(FileNotFoundError):
                text = Path(folder, entry).read_text("ascii")
            lines = text.split("\n")[:-1]  # whole lines only: the last may be half written
            if lines:
                done, cpu = lines[-1].split()
                count, seconds = count + int(done), seconds + float(cpu)
    return count, seconds
