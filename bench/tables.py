"""The results as tables: the summary and targets for the terminal, the workloads in markdown."""

from __future__ import annotations

from typing import Any

from bench.schema import LABELS, field, fmt, number, throughput
from bench.targets import compute_targets

__all__ = [
    "COLUMNS",
    "summary_rows",
    "md_table",
    "text_table",
    "status",
    "targets_table_text",
    "workload_tables",
]

COLUMNS = [
    ("server", "server"),
    ("conns", "W1 conns"),
    ("hs", "W1 handshakes/s"),
    ("rss", "W1 RSS KiB/conn"),
    ("rate", "W2 msgs/s"),
    ("cpu", "W2 CPU us/msg"),
    ("burst", "burst CPU us/msg"),
    ("p50", "W2 p50 ms"),
    ("p99", "W2 p99 ms"),
    ("max", "W2 max ms"),
    ("w4p99", "W4 healthy p99 ms"),
    ("w4mem", "W4 RSS growth MiB"),
    ("w4drop", "W4 dropped"),
    ("w5p99", "W5 p99 ms"),
]


def summary_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per server with the headline numbers, formatted."""
    rows = []
    for name, res in results.get("servers", {}).items():
        wl = res.get("workloads", {})
        growth = number(field(wl, "W4", "rss_growth_kib"))
        rows.append({
            "server": LABELS.get(name, name),
            "conns": fmt(field(wl, "W1", "connections"), 0),
            "hs": fmt(field(wl, "W1", "handshakes_per_s"), 0),
            "rss": fmt(field(wl, "W1", "rss_kib_per_conn")),
            "rate": fmt(throughput(res).get("msgs_per_s"), 0),
            "cpu": fmt(throughput(res).get("cpu_us_per_msg"), 2),
            "burst": fmt(field(wl, "burst", "cpu_us_per_msg"), 2),
            "p50": fmt(field(wl, "W2", "latency", "p50_ms")),
            "p99": fmt(field(wl, "W2", "latency", "p99_ms")),
            "max": fmt(field(wl, "W2", "latency", "max_ms")),
            "w4p99": fmt(field(wl, "W4", "latency", "p99_ms")),
            "w4mem": fmt(growth / 1024 if growth is not None else None),
            "w4drop": fmt(field(wl, "W4", "dropped_by_server"), 0),
            "w5p99": fmt(field(wl, "W5", "latency", "p99_ms")),
        })
    return rows


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """Returns a markdown table of headers and rows."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def text_table(results: dict[str, Any]) -> str:
    """The summary as an aligned plain-text table for the terminal."""
    rows = summary_rows(results)
    headers = [h for _, h in COLUMNS]
    cells = [[r[k] for k, _ in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(c[i].rjust(widths[i]) if i else c[i].ljust(widths[i])
                               for i in range(len(headers))))
    return "\n".join(lines)


def status(t: dict[str, Any]) -> str:
    """Returns the status word of one target: met, MISSED or not measured."""
    return {True: "met", False: "MISSED", None: "not measured"}[t["met"]]


def targets_table_text(results: dict[str, Any]) -> str:
    """The target checks as plain text."""
    lines = []
    for t in results.get("targets") or compute_targets(results):
        lines.append(f"{status(t):>12}  {t['name']}: {fmt(t['value'], 2)} {t['op']} "
                     f"{fmt(t['limit'], 2)}  {t.get('detail', '')}")
    return "\n".join(lines)


def workload_tables(results: dict[str, Any]) -> str:
    """Returns the markdown tables with every workload's numbers per server."""
    parts = []
    servers = results.get("servers", {})
    rows = []
    for name, res in servers.items():
        w1 = field(res, "workloads", "W1") or {}
        rows.append([LABELS.get(name, name), fmt(w1.get("connections"), 0),
                     fmt(w1.get("failed"), 0), fmt(w1.get("connect_wall_s")),
                     fmt(w1.get("handshakes_per_s"), 0), fmt(w1.get("handshake_ms_mean")),
                     fmt(w1.get("cpu_us_per_handshake"), 0),
                     fmt((w1.get("rss_base_kib") or 0) / 1024), fmt((w1.get("rss_idle_kib") or 0)
                                                                   / 1024),
                     fmt(w1.get("rss_kib_per_conn")), str(w1.get("auth", "-"))])
    parts.append("### W1 idle connections\n\n" + md_table(
        ["server", "open", "failed", "connect s", "handshakes/s", "handshake ms (mean)",
         "server CPU us/handshake", "RSS before MiB", "RSS idle MiB", "KiB/conn",
         "auth in handshake"], rows))
    for key, title in (("W2", "W2 broadcast to all, one alert in flight (latency)"),
                       ("W2sat", "W2 broadcast to all, four alerts in flight (throughput)"),
                       ("W5", "W5 login storm during broadcasts (product only)"),
                       ("W4", "W4 slow consumers (2% stop reading) during broadcasts")):
        rows = []
        for name, res in servers.items():
            r = (field(res, "workloads", "W2", "saturated") if key == "W2sat"
                 else field(res, "workloads", key))
            if not r:
                continue
            lat = r.get("latency", {})
            row = [LABELS.get(name, name), f"{r.get('broadcasts')}/{r.get('broadcasts_planned')}",
                   fmt(r.get("recipients_per_broadcast"), 0),
                   f"{fmt(r.get('delivered'), 0)}/{fmt(r.get('expected'), 0)}",
                   fmt(r.get("msgs_per_s"), 0), fmt(r.get("cpu_us_per_msg"), 2),
                   fmt(lat.get("p50_ms")), fmt(lat.get("p99_ms")), fmt(lat.get("max_ms")),
                   fmt(100 * (r.get("server_core_util") or 0), 0) + "%",
                   fmt(100 * (r.get("client_core_util") or 0), 0) + "%"]
            if key == "W4":
                row += [fmt(r.get("paused"), 0), fmt((r.get("rss_growth_kib") or 0) / 1024),
                        fmt(r.get("dropped_by_server"), 0)]
            if key == "W5":
                side = r.get("side", {})
                row += [f"{side.get('logins_ok', 0)} ok / {side.get('logins_failed', 0)} failed",
                        fmt(side.get("login_p50_ms"), 0)]
            rows.append(row)
        if not rows:
            continue
        headers = ["server", "broadcasts", "recipients", "delivered", "msgs/s", "CPU us/msg",
                   "p50 ms", "p99 ms", "max ms", "server core", "client core"]
        if key == "W4":
            headers += ["slow clients", "RSS growth MiB", "dropped by server"]
        if key == "W5":
            headers += ["logins", "login p50 ms"]
        parts.append(f"### {title}\n\n" + md_table(headers, rows))
    w3 = field(servers, "product", "workloads", "W3")
    if w3:
        rows = []
        for key, by in (("few", "bystanders_few"), ("many", "bystanders_many")):
            r = w3.get(key)
            if not r:
                continue
            got = r.get("events_received", {})
            rows.append([f"{fmt(w3.get(by), 0)} bystanders", fmt(r.get("sends"), 0),
                         fmt(r.get("loop_cpu_us_per_send"), 0), fmt(r.get("cpu_us_per_send"), 0),
                         fmt(r.get("wall_ms_per_send"), 2),
                         f"{got.get('user.updated', 0)} user.updated, "
                         f"{got.get('profile.updated', 0)} profile.updated "
                         f"(expected {r.get('events_expected_per_type')} each)"])
        parts.append("### W3 targeted sends (product only)\n\n" + md_table(
            ["phase", "sends", "IOLoop CPU us/send", "process CPU us/send", "wall ms/send",
             "events at the 3 tabs"], rows)
            + f"\n\nRatio many/few: **{fmt(w3.get('ratio'), 2)}** on the IOLoop thread (target "
            f"<= 1.2), {fmt(w3.get('ratio_process'), 2)} for the whole process. Medians of 3 "
            "rounds. The bystanders receive nothing.")
    return "\n\n".join(parts)
