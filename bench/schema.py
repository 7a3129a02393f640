"""The results dict's shape and how its fields are read, labelled and formatted for tables."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "LABELS",
    "RESULT_KEYS",
    "WORKLOAD_KEYS",
    "ROOM_KEYS",
    "field",
    "number",
    "fmt",
    "validate_results",
    "throughput",
]

LABELS = {
    "product": "this server (Tornado + hub)",
    "websockets": "websockets broadcast()",
    "tornado": "Tornado write_message (naive)",
    "node": "Node ws",
    "floor": "raw send() floor (reference)",
    "socketio": "python-socketio (aiohttp)",
    "socketio-node": "Node socket.io",
}


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
    if isinstance(value, float) and math.isnan(value):
        return None
    return float(value)


def fmt(value: Any, digits: int = 1) -> str:
    """Formats a number for a table: thousands separators, '-' for missing."""
    v = number(value)
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


RESULT_KEYS = ("schema", "started", "finished", "mode", "config", "machine", "servers", "targets")
WORKLOAD_KEYS = {
    "W1": ("connections", "handshakes_per_s", "rss_kib_per_conn"),
    "W2": ("msgs_per_s", "cpu_us_per_msg", "latency"),
    "W3": ("few", "many", "ratio"),
    "W4": ("latency", "paused", "rss_growth_kib", "dropped_by_server"),
    "W5": ("latency", "side"),
}
ROOM_KEYS = {
    "R1": ("published", "delivered", "msgs_per_s", "cpu_us_per_msg", "latency"),
    "R2": ("few", "many", "ratio"),
}


def validate_results(results: dict[str, Any]) -> list[str]:
    """Returns what is missing from a results dict (empty when it has the documented shape)."""
    problems = [f"missing {k}" for k in RESULT_KEYS if k not in results]
    for name, res in results.get("servers", {}).items():
        if res.get("error"):
            continue
        for wl, keys in WORKLOAD_KEYS.items():
            data = field(res, "workloads", wl)
            if data is None:
                if wl in ("W1", "W2") or (name == "product" and wl in ("W3", "W5")):
                    problems.append(f"{name}: missing {wl}")
                continue
            problems += [f"{name}: {wl} missing {k}" for k in keys if k not in data]
    for name, res in results.get("rooms", {}).items():
        if res.get("error"):
            continue
        for wl, keys in ROOM_KEYS.items():
            data = field(res, "workloads", wl)
            if data is None:
                if wl == "R1" or name == "product":
                    problems.append(f"rooms {name}: missing {wl}")
                continue
            problems += [f"rooms {name}: {wl} missing {k}" for k in keys if k not in data]
    return problems


def throughput(res: dict[str, Any]) -> dict[str, Any]:
    """The W2 numbers behind the headline: the run with one alert in flight."""
    return field(res, "workloads", "W2") or {}
