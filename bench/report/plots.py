"""Draws the benchmark's PNG plots with matplotlib (imported only when drawing)."""

from __future__ import annotations

import os
import textwrap
from typing import Any

from bench.report.format import field, fmt, label, number

__all__ = ["draw_plots"]

# Each part's plots: (file, workload field, title, y label[, limit, limit label]).
BARS = {"servers": [
    ("bench-throughput.png", ("W2", "msgs_per_s"),
     "W2 delivered messages per second (higher is better)", "msgs/s"),
    ("bench-cpu.png", ("W2", "cpu_us_per_msg"),
     "W2 server CPU per delivered message (lower is better)", "microseconds", 10.0,
     "target 10 us"),
    ("bench-memory.png", ("W1", "rss_kib_per_conn"),
     "W1 RSS per idle connection (lower is better)", "KiB", 9.0, "target 9 KiB"),
    ("bench-handshakes.png", ("W1", "handshakes_per_s"),
     "W1 handshakes per second (higher is better)", "per second")],
    "rooms": [("bench-rooms-cpu.png", ("R1", "cpu_us_per_msg"),
               "R1 server CPU per room delivery (lower is better)", "microseconds")]}
CDFS = {"servers": [("bench-latency.png", {"W2": "-", "W4": ":", "W5": "--"},
                     "Fan-out latency CDF (W2 solid, W4 healthy dotted, W5 dashed)")],
        "rooms": [("bench-rooms-latency.png", {"R1": "-"}, "R1 publish-to-delivery latency CDF")]}


def _bars(plt: Any, servers: dict[str, Any], path: tuple[str, ...], title: str, ylabel: str,
          limit: float | None = None, limit_label: str = "") -> Any:
    """Returns a bar chart of one workload field per server, with an optional limit line."""
    names = list(servers)
    values = [number(field(servers[n], "workloads", *path)) or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    ax.bar([textwrap.fill(label(n), 15) for n in names], values,  # labels side by side
           color=["#1f77b4" if n == "product" else "#9aa5b1" for n in names])
    for i, v in enumerate(values):
        ax.annotate(fmt(v, 2 if v < 100 else 0), (i, v), ha="center", va="bottom", fontsize=8)
    if limit is not None:
        ax.axhline(limit, color="#d62728", linestyle="--", linewidth=1, label=limit_label)
        ax.legend(loc="upper right", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", labelsize=8)
    return fig


def _cdf(plt: Any, servers: dict[str, Any], keys: dict[str, str], title: str) -> Any:
    """Returns latency CDFs of each server's workloads in keys (key -> line style)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for n, res in servers.items():
        for key, style in keys.items():
            if pts := field(res, "workloads", key, "latency_quantiles"):
                ax.plot([p[1] for p in pts], [p[0] for p in pts], style,
                        label=label(n) + (f" {key}" if len(keys) > 1 else ""),
                        linewidth=1.4 if n == "product" else 1)
    ax.set(xscale="log", xlabel="latency, ms (log)", ylabel="fraction of messages", title=title)
    ax.axvline(200, color="#d62728", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def draw_plots(part: str, servers: dict[str, Any], img_dir: str) -> list[tuple[str, str]]:
    """Draws one part's plots into img_dir; returns (alt, file name) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(img_dir, exist_ok=True)
    figs = {f: _bars(plt, servers, *bar) for f, *bar in BARS[part]}
    figs.update({f: _cdf(plt, servers, *cdf) for f, *cdf in CDFS[part]})
    written = []
    for fname, fig in figs.items():
        fig.tight_layout()
        fig.savefig(os.path.join(img_dir, fname), dpi=100)
        written.append((fig.axes[0].get_title(), fname))
        plt.close(fig)
    return written
