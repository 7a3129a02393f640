"""Draws the benchmark's PNG plots with matplotlib (imported only when drawing)."""

from __future__ import annotations

import os
from typing import Any

from bench.schema import LABELS, field, fmt, number

__all__ = ["draw_plots"]


def draw_plots(results: dict[str, Any], img_dir: str) -> list[tuple[str, str]]:
    """Draws the bar, latency and memory plots into img_dir; returns (alt, file name) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(img_dir, exist_ok=True)
    servers = results.get("servers", {})
    names = list(servers)
    labels = [LABELS.get(n, n).replace(" (", "\n(") for n in names]
    colors = ["#1f77b4" if n == "product" else "#9aa5b1" for n in names]
    written = []

    def bars(fname: str, title: str, ylabel: str, path: tuple[str, ...],
             limit: float | None = None, limit_label: str = "") -> None:
        """Draws one bar chart of a workload field per server, with an optional limit line."""
        values = [number(field(servers[n], "workloads", *path)) or 0.0 for n in names]
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        ax.bar(labels, values, color=colors)
        for i, v in enumerate(values):
            ax.annotate(fmt(v, 2 if v < 100 else 0), (i, v), ha="center", va="bottom",
                        fontsize=8)
        if limit is not None:
            ax.axhline(limit, color="#d62728", linestyle="--", linewidth=1, label=limit_label)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(img_dir, fname), dpi=100)
        plt.close(fig)
        written.append((title, fname))

    bars("bench-throughput.png", "W2 delivered messages per second (higher is better)",
         "msgs/s", ("W2", "msgs_per_s"))
    bars("bench-cpu.png", "W2 server CPU per delivered message (lower is better)",
         "microseconds", ("W2", "cpu_us_per_msg"), 10.0, "target 10 us")
    bars("bench-memory.png", "W1 RSS per idle connection (lower is better)", "KiB",
         ("W1", "rss_kib_per_conn"), 16.0, "target 16 KiB")
    bars("bench-handshakes.png", "W1 handshakes per second (higher is better)", "per second",
         ("W1", "handshakes_per_s"))

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for n in names:
        for key, style in (("W2", "-"), ("W4", ":"), ("W5", "--")):
            pts = field(servers[n], "workloads", key, "latency_quantiles")
            if not pts:
                continue
            ax.plot([p[1] for p in pts], [p[0] for p in pts], style,
                    label=f"{LABELS.get(n, n)} {key}", linewidth=1.4 if n == "product" else 1)
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Fan-out latency CDF (W2 solid, W4 healthy dotted, W5 dashed)")
    ax.axvline(200, color="#d62728", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "bench-latency.png"), dpi=100)
    plt.close(fig)
    written.append(("Fan-out latency CDF", "bench-latency.png"))

    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for n in names:
        samples = field(servers[n], "workloads", "W4", "rss_samples")
        if samples:
            base = samples[0][1]
            ax.plot([s[0] for s in samples], [(s[1] - base) / 1024 for s in samples],
                    label=LABELS.get(n, n))
    ax.set_xlabel("seconds into W4")
    ax.set_ylabel("RSS growth, MiB")
    ax.set_title("W4 server memory while 2% of clients stop reading")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "bench-slow-consumers.png"), dpi=100)
    plt.close(fig)
    written.append(("W4 server memory with slow consumers", "bench-slow-consumers.png"))
    return written
