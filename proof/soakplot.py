"""The soak's plot: RSS, open fds, event-loop lag, deliveries/s, p99 latency and the server's
CPU over the run (matplotlib, imported only when drawing)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PLOT", "SERIES", "draw"]

PLOT = "soak.png"


SERIES = (("rss_kib", "RSS, MiB", 1 / 1024), ("fds", "open fds", 1),
          ("lag_ms", "event-loop lag, ms", 1), ("deliveries_per_s", "deliveries/s", 1),
          ("p99_ms", "p99 latency, ms", 1), ("cpu_pct", "server CPU %", 1))


def _mark_baseline(ax: Any, report: dict[str, Any], key: str, scale: float, end: float) -> None:
    """Draws the value before the load (dotted) and the one after it (a dot at the end)."""
    before, after = report.get("baseline", {}).get(key), report.get("after", {}).get(key)
    if before is not None:
        ax.axhline(before * scale, color="#2ca02c", ls=":", lw=1, label="before the load")
    if after is not None:
        ax.plot([end], [after * scale], "o", color="#2ca02c", ms=4, label="after the load")
    if before is not None or after is not None:
        ax.legend(fontsize=7, loc="lower right")


def draw(report: dict[str, Any], path: str) -> None:
    """Draws the run's series over time into path (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, rows, plan = report.get("samples", []), report.get("rows", []), report["plan"]
    minutes = [s["t_s"] / 60 for s in samples]
    end = minutes[-1] if minutes else 0.0
    fig, axes = plt.subplots(len(SERIES), 1, figsize=(7.5, 11), sharex=True)
    for ax, (key, title, scale) in zip(axes, SERIES, strict=True):
        ax.plot(minutes, [(s.get(key) or 0) * scale for s in samples], color="#1f77b4", lw=1.2)
        if key in ("rss_kib", "fds"):
            _mark_baseline(ax, report, key, scale, end)
        elif key == "p99_ms" and rows:  # each interval's p99 over the whole interval
            ax.step([0.0] + [r["t_s"] / 60 for r in rows],
                    [rows[0]["p99_ms"] or 0] + [r["p99_ms"] or 0 for r in rows],
                    where="pre", color="#d62728", lw=1, label="per interval")
            ax.legend(fontsize=7, loc="upper right")
        elif key == "cpu_pct":
            for other, color, name in (("wait_pct", "#ff7f0e", "its event loop waiting for a CPU"),
                                       ("others_pct", "#9aa5b1", "other processes on its core")):
                ax.plot(minutes, [s.get(other) or 0 for s in samples], color=color, lw=1,
                        label=name)
            ax.legend(fontsize=7, loc="upper right")
        ax.axvline(plan.get("warm_up", 2) * plan["interval"] / 60, color="#9aa5b1", ls="--",
                   lw=0.8)
        ax.set_ylabel(title, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
    axes[0].set_title(f"Soak: {plan['connections']:,} connections, {plan['minutes']:g} min "
                      "(dashed: end of the warm-up)")
    axes[-1].set_xlabel("minutes since the load started")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
