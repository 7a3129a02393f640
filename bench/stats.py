"""Pure helpers for the benchmark: percentiles, /proc accounting and latency summaries.

Nothing here does I/O except the small /proc readers, so the math is unit-tested directly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

__all__ = [
    "percentile",
    "summarize_latencies",
    "quantile_points",
    "parse_stat_cpu",
    "parse_status_rss_kib",
    "parse_schedstat_ns",
    "proc_cpu_seconds",
    "proc_runtime_seconds",
    "proc_rss_kib",
    "CLK_TCK",
]

try:
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
    CLK_TCK = 100


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Returns the q-th percentile (0-100) of already sorted values by linear interpolation.

    The same definition as numpy's default ("linear"): rank = q/100 * (n - 1). An empty
    sequence gives NaN.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = q / 100.0 * (n - 1)
    low = int(math.floor(rank))
    high = min(low + 1, n - 1)
    frac = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * frac


def summarize_latencies(values: Iterable[float]) -> dict[str, float | int]:
    """Returns count, mean, p50, p90, p99, p99.9 and max of latencies given in seconds, as ms."""
    data = sorted(values)
    n = len(data)
    if n == 0:
        nan = math.nan
        return {"count": 0, "mean_ms": nan, "p50_ms": nan, "p90_ms": nan, "p99_ms": nan,
                "p999_ms": nan, "max_ms": nan}
    return {
        "count": n,
        "mean_ms": 1000.0 * sum(data) / n,
        "p50_ms": 1000.0 * percentile(data, 50),
        "p90_ms": 1000.0 * percentile(data, 90),
        "p99_ms": 1000.0 * percentile(data, 99),
        "p999_ms": 1000.0 * percentile(data, 99.9),
        "max_ms": 1000.0 * data[-1],
    }


def quantile_points(values: Iterable[float], points: int = 200) -> list[list[float]]:
    """Returns [[quantile 0..1, value in ms], ...] spread evenly, small enough for the JSON."""
    data = sorted(values)
    if not data or points < 2:
        return []
    out = []
    for i in range(points):
        q = i / (points - 1)
        out.append([round(q, 5), round(1000.0 * percentile(data, 100.0 * q), 4)])
    return out


def parse_stat_cpu(stat_line: str, clk_tck: int = CLK_TCK) -> float:
    """Returns utime + stime in seconds from one /proc/<pid>/stat line.

    The command name (field 2) is in parentheses and may itself hold spaces or ')', so the
    fields are counted from the last ')'. utime and stime are fields 14 and 15 (1-based).
    """
    rest = stat_line[stat_line.rindex(")") + 2:].split()
    # rest[0] is field 3 (state), so field k is rest[k - 3].
    utime, stime = int(rest[14 - 3]), int(rest[15 - 3])
    return (utime + stime) / float(clk_tck)


def parse_status_rss_kib(status_text: str) -> int:
    """Returns VmRSS in KiB from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            value = int(parts[1])
            unit = parts[2].lower() if len(parts) > 2 else "kb"
            return value * 1024 if unit == "mb" else value
    raise ValueError("no VmRSS line in status text")


def parse_schedstat_ns(text: str) -> int:
    """Returns the on-CPU time in ns from a /proc/<pid>/task/<tid>/schedstat line."""
    return int(text.split()[0])


def proc_cpu_seconds(pid: int) -> float:
    """Returns the process's user + system CPU time (all threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        return parse_stat_cpu(fh.read())


def proc_runtime_seconds(pid: int) -> float:
    """Returns the summed on-CPU time of the process's threads in seconds (ns resolution).

    Falls back to /proc/<pid>/stat (clock-tick resolution) where schedstat is missing.
    """
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as fh:
                    total += parse_schedstat_ns(fh.read())
            except FileNotFoundError:  # the thread ended in between
                continue
    except (FileNotFoundError, ValueError, IndexError):
        return proc_cpu_seconds(pid)
    return total / 1e9


def proc_rss_kib(pid: int) -> int:
    """Returns the process's resident set size in KiB from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        return parse_status_rss_kib(fh.read())
