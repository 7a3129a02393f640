"""The paired-rounds section of docs/benchmarks.md and its terminal table (bench/paired.py)."""

from __future__ import annotations

from typing import Any

from bench.schema import LABELS, fmt
from bench.storm_report import replace_block
from bench.tables import md_table

__all__ = ["PAIRED_START", "PAIRED_END", "TARGETS", "verdicts", "render_block", "write_block",
           "text_table"]

PAIRED_START = "<!-- paired: written by bench/paired.py -->"
PAIRED_END = "<!-- /paired -->"

# Issue 14's two CPU targets against the websockets peer, read from the paired ratios:
# (measurement, limit, what it stands for).
TARGETS = (
    ("broadcast", 0.70, "W2 CPU per delivered message vs the websockets peer (issue 14: <= 0.70)"),
    ("handshake", 1.00, "W1 CPU per handshake vs the websockets peer's plain ones (issue 14's "
                        "handshakes/s at least the peer's, on a server CPU-bound in W1: <= 1.00)"),
)


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns this server's paired ratio, limit and met/missed for each target."""
    out = []
    for key, limit, name in TARGETS:
        ratio = report.get(key, {}).get("ratio_to_peer", {}).get("product")
        out.append({"name": name, "ratio": ratio, "limit": limit,
                    "met": None if ratio is None else ratio <= limit})
    return out


def _summary_rows(report: dict[str, Any]) -> list[list[str]]:
    h, b = report["handshake"], report["broadcast"]
    rows = []
    for name in report["servers"]:
        peer = name == report["peer"]
        rows.append([LABELS.get(name, name), fmt(h["median_cpu_us"].get(name), 0),
                     "1.00" if peer else fmt(h["ratio_to_peer"].get(name), 2),
                     fmt(b["median_cpu_us"].get(name), 2),
                     "1.00" if peer else fmt(b["ratio_to_peer"].get(name), 2)])
    return rows


def _round_rows(report: dict[str, Any], key: str, digits: int) -> list[list[str]]:
    names = report["servers"]
    rows = []
    for i, r in enumerate(report[key]["rounds"]):
        rows.append([str(i + 1), *(fmt(r[n]["cpu_us"], digits) for n in names)])
    return rows


def render_block(report: dict[str, Any], json_name: str) -> str:
    """Returns the docs section for a paired run."""
    names = report["servers"]
    labels = [LABELS.get(n, n) for n in names]
    load0, load1 = report.get("loadavg_start"), report.get("loadavg_end")
    lines = [
        PAIRED_START,
        "## Paired rounds: CPU per handshake and per delivery, every server up at once",
        "",
        f"Run {report['started']} ({report['mode']} sizes, {report['rounds']} rounds); raw "
        f"results in `bench/results/{json_name}` (not committed). Load average "
        f"{fmt(load0[0], 2) if load0 else '-'} at the start, "
        f"{fmt(load1[0], 2) if load1 else '-'} at the end.",
        "",
        "The tables above measure one server after another, minutes apart, and the load beside "
        "the server's core on a shared machine moves such a ratio by a third from one minute "
        "to the next. Here every server runs at the same time on the server core; each round "
        "measures each server once, in an order that rotates, and a ratio is taken within a "
        "round, then the median over the rounds. **H**: server CPU per handshake, "
        f"{report['handshakes']} more connections opened a round and kept open, as in W1 (this "
        "server's with the real tokens of users it has not seen before, three tabs each; the "
        "peers accept any token), all closed before B. **B**: server "
        f"CPU per delivered message, W2's pattern (one alert in flight), {report['broadcasts']} "
        f"alerts a round to {report['connections']:,} connections. Server CPU is the on-CPU "
        "time of all its threads (/proc schedstat).",
        "",
        md_table(["server", "H: CPU us per handshake (median)", "H: vs websockets",
                  "B: CPU us per delivery (median)", "B: vs websockets"], _summary_rows(report)),
        "",
        "Read against issue 14's targets (this server's ratio, median of the rounds):",
        "",
    ]
    for v in verdicts(report):
        state = "not measured" if v["met"] is None else "met" if v["met"] else "MISSED"
        lines.append(f"- {v['name']}: {fmt(v['ratio'], 2)}, **{state}**")
    lines += [
        "",
        "Every round (us):",
        "",
        md_table(["H round", *labels], _round_rows(report, "handshake", 0)),
        "",
        md_table(["B round", *labels], _round_rows(report, "broadcast", 2)),
        "",
        "`make bench-paired` (or `.venv/bin/python -m bench.paired [--quick]`) runs only this "
        "section and rewrites it; it is not part of `make bench`.",
        PAIRED_END,
    ]
    return "\n".join(lines)


def write_block(md_path: str, block: str) -> None:
    """Puts block into the page at md_path, replacing an earlier one, before "## Reproduce"."""
    with open(md_path, encoding="utf-8") as fh:
        page = fh.read()
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(replace_block(page, block, PAIRED_START, PAIRED_END))


def text_table(report: dict[str, Any]) -> str:
    """Returns the summary and the verdicts as plain text for the terminal."""
    rows = [["server", "H us/handshake", "H vs peer", "B us/delivery", "B vs peer"],
            *_summary_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for v in verdicts(report):
        state = "-" if v["met"] is None else "met" if v["met"] else "MISSED"
        out.append(f"{state:>7}  {v['name']}: {fmt(v['ratio'], 2)}")
    return "\n".join(out)
