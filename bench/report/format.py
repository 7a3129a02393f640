"""How the report reads results and formats them: labels, numbers, tables and section heads."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LABELS", "field", "number", "fmt", "md_table", "targets_table", "run_line", "label"]

STATUS = {True: "met", False: "MISSED", None: "not measured"}  # a target's verdict
LABELS = {
    "product": "this server (Tornado + hub)",
    "product-asyncio": "this server on the stock asyncio loop",
    "websockets": "websockets broadcast()",
    "tornado": "Tornado write_message (naive)",
    "node": "Node ws", "floor": "bare floor (reference)",
    "socketio": "python-socketio (aiohttp)", "socketio-node": "Node socket.io",
}


def label(name: str) -> str:
    """Returns the table label of a server ("product@REV": this server built at REV)."""
    rev = name.partition("product@")[2]
    return f"this server at {rev}" if rev else LABELS.get(name, name)


def field(d: Any, *path: str) -> Any:
    """Returns the value at path in nested dicts, or None when any key is missing."""
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def number(value: Any) -> float | None:
    """Returns value as a float, or None when it is not a number or is NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if isinstance(value, float) and math.isnan(value) else float(value)


def fmt(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    """Formats a number (times scale) for a table: thousands separators, '-' for missing."""
    if (v := number(value)) is None:
        return "-"
    v *= scale
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """Returns a markdown table of headers and rows."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def targets_table(targets: list[dict[str, Any]]) -> str:
    """Returns the targets as a markdown table, a missed one with its known cause."""
    rows = [[t["name"], fmt(t["value"], 2), f"{t['op']} {fmt(t['limit'], 2)}",
             f"**{STATUS[t['met']]}**", ". ".join(x for x in (
                 t["detail"], t.get("cause") and f"Cause: {t['cause']}") if x)] for t in targets]
    return md_table(["target", "value", "limit", "status", "detail"], rows) if rows else ""


def run_line(report: dict[str, Any], json_name: str, sizes: str = "") -> list[str]:
    """Returns a section's first lines: when, sizes, load, raw results, notes."""
    line = f"Run {report.get('started', '?')} ({report.get('mode', '?')} mode"
    line += f", {sizes})" if sizes else ")"
    load = [f"{x[0]:.2f} at the {when}" for when, x in (
        ("start", report.get("loadavg_start")), ("end", report.get("loadavg_end"))) if x]
    if load:
        line += ", load average " + ", ".join(load)
    out = [line + f"; raw results in `bench/results/{json_name}` (not committed).", ""]
    return out + ([f"**Conditions.** {report['note']}", ""] if report.get("note") else [])
