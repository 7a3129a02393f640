"""The soak's verdict and report: the criteria, one line per interval, the server log's scan
and the Soak section of docs/benchmarks.md (between its markers)."""

from __future__ import annotations

import json
from typing import Any

from bench.report.format import fmt, md_table, targets_table
from proof.soakplan import WINDOW_SECONDS

__all__ = ["MARKERS", "CPU_OTHERS", "P99_RATIO", "RSS_GROWTH", "targets", "line", "summary",
           "scan_log", "section", "put_section", "write_section", "load"]

MARKERS = ("<!-- soak: written by proof/soak.py from one run; do not edit by hand -->",
           "<!-- /soak -->")
RSS_GROWTH = 5.0  # percent, at most, after the warm-up
P99_RATIO = 1.5  # a window's p99 over the warm-up's last window's, at most
CPU_OTHERS = 10.0  # percent of the server's core other processes may take in a judged interval
HEALTHY = ("feed", "room", "churn")
PROBLEMS = ("ERROR", "CRITICAL")


def _target(name: str, value: Any, op: str, limit: float, met: bool | None,
            detail: str) -> dict[str, Any]:
    """Returns one criterion as bench/report's targets table reads it."""
    return {"name": name, "value": value, "op": op, "limit": limit, "met": met,
            "detail": detail}


def _misses(check: dict[str, Any]) -> tuple[int, int, str]:
    """Returns (numbers missing or repeated, deliveries checked, detail) over healthy clients."""
    bad, seen, parts = 0, 0, []
    for kind in HEALTHY:
        c = check.get(kind, {})
        wrong = sum(c.get(p + k, 0) for p in ("", "room_")
                    for k in ("gaps", "duplicates", "out_of_order"))
        bad += wrong + c.get("closed", 0)
        seen += c.get("received", 0) + c.get("room_received", 0)
        parts.append(f"{kind} {fmt(c.get('clients'), 0)} clients, "
                     f"{fmt(c.get('received', 0) + c.get('room_received', 0), 0)} deliveries, "
                     f"{wrong} missing/repeated/out of order, {c.get('closed', 0)} closed")
    return bad, seen, "; ".join(parts)


def _flatness(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns the memory and latency criteria: the intervals after the warm-up against the
    last interval of the warm-up (the second minute of a full run) for memory, the windows
    after it against its last window for latency."""
    rows, w = report.get("rows", []), report["plan"].get("warm_up", 2)
    name = (_label(rows[w - 1], report["plan"]["interval"], line=False) if len(rows) > w
            else "-")
    after, ref = rows[w:], rows[w - 1] if len(rows) > w else {}
    growth = (100.0 * (max(r["rss_kib"] for r in after) / ref["rss_kib"] - 1) if after
              else None)
    out = [_target("RSS growth after the warm-up, %", growth, "<", RSS_GROWTH,
                   None if growth is None else growth < RSS_GROWTH,
                   f"the largest interval's RSS after the warm-up against {name}'s (an "
                   "interval's RSS: the median of its samples)")]
    # Latency is judged over windows of `window` intervals (30 s or one interval, whichever
    # is longer; the row's window_p99_ms): the warm-up's last window against every window
    # wholly after it. A window in which other processes took the server's core says what they
    # did to the server, not how it holds up: it is not judged.
    k = report["plan"].get("window", 1)
    p99 = [r.get("window_p99_ms", r["p99_ms"]) for r in rows]
    busy = [any(r.get("others_pct", 0) > CPU_OTHERS for r in rows[max(0, i - k + 1):i + 1])
            for i in range(len(rows))]
    ends = range(w + k - 1, len(rows))
    judged = [i for i in ends if not busy[i] and p99[i]]
    usable = len(rows) > w and bool(p99[w - 1]) and not busy[w - 1]
    worst = max((p99[i] / p99[w - 1] for i in judged), default=None) if usable else None
    reference = name if k == 1 or len(rows) <= w else (
        f"the intervals from {max(0.0, rows[w - 1]['t_s'] - k * report['plan']['interval']):.0f}"
        f" to {rows[w - 1]['t_s']:.0f} s")
    unit = (f"windows of {k} intervals ({fmt(k * report['plan']['interval'], 0)} s, their "
            "p99s' median)" if k > 1 else "intervals")
    out.append(_target("p99 latency over the end of the warm-up", worst, "<=", P99_RATIO,
                       None if worst is None else worst <= P99_RATIO,
                       f"{len(judged) if usable else 0} of {len(ends)} {unit} after the "
                       f"warm-up judged against the p99 of {reference}, "
                       f"{fmt(p99[w - 1] if len(rows) > w else None, 1)} ms; not judged: those "
                       f"in which other processes ran on the server's core over "
                       f"{CPU_OTHERS:g}% of the time"))
    return out


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns the run's criteria, each met, missed or not measured."""
    out = []
    if report.get("error"):
        out.append(_target("run completed", 1, "=", 0, False, report["error"]))
    out += _flatness(report)
    base, after = report.get("baseline", {}).get("fds"), report.get("after", {}).get("fds")
    out.append(_target("server fds after the load", after, "<=", base,
                       None if None in (base, after) else after <= base,
                       "baseline: every steady client open, before the churn and the slow "
                       "consumers" + _fd_difference(report)))
    if "check" in report:
        bad, seen, detail = _misses(report["check"])
        out.append(_target("deliveries missing, repeated or reordered", bad, "=", 0,
                           bad == 0 and seen > 0, detail))
    slow = report.get("slow", {})
    out.append(_target("slow consumers the server left open", slow.get("slow_open"), "=", 0,
                       None if "slow_open" not in slow else slow["slow_open"] == 0,
                       f"{fmt(slow.get('slow'), 0)} opened, reading nothing"))
    failed = _failed(report)
    out.append(_target("failed requests and connects", sum(failed.values()), "=", 0,
                       not failed, ", ".join(f"{k}: {v}" for k, v in failed.items())))
    log = report.get("log", {})
    out.append(_target("errors in the server's log", log.get("errors"), "=", 0,
                       None if "errors" not in log else log["errors"] == 0,
                       " | ".join(log.get("samples", []))[:300]))
    return out


def _fd_difference(report: dict[str, Any]) -> str:
    """Returns what the server holds open beyond its baseline, if anything, for the detail."""
    before = report.get("baseline", {}).get("fd_kinds", {})
    after = report.get("after", {}).get("fd_kinds", {})
    more = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
    return "; left open: " + ", ".join(f"{k} +{n}" for k, n in more.items()) if more else ""


def _failed(report: dict[str, Any]) -> dict[str, int]:
    """Returns every failed request or connect of the run, by what failed."""
    out = {k: v for k, v in report.get("traffic", {}).get("failures", {}).items() if v}
    for kind, c in report.get("connect", {}).items():
        if isinstance(c, dict) and c.get("failed"):
            out[f"{kind} connects"] = c["failed"]
    pairs = (("churn connects", report.get("churn", {}).get("errors", {})),
             ("room publishes refused", report.get("publish", {}).get("refused", {})))
    for what, errors in pairs:
        if sum(errors.values()):
            out[what] = sum(errors.values())
    for what, n in (("room publishes unanswered", report.get("publish", {}).get("unanswered")),
                    ("slow connects", report.get("slow", {}).get("failed"))):
        if n:
            out[what] = n
    return out


def _label(row: dict[str, Any], interval: float, line: bool = True) -> str:
    """Returns how an interval is named: "minute 3", or "at 20 s" in a line and "the interval
    to 20 s" in a sentence."""
    if interval == 60:
        return f"minute {row['interval']}"
    return f"at {row['t_s']:.0f} s" if line else f"the interval to {row['t_s']:.0f} s"


def line(row: dict[str, Any], plan: Any) -> str:
    """Returns an interval's progress line."""
    return (f"{_label(row, plan.interval)}: {row['open']:,} open, RSS "
            f"{row['rss_kib'] / 1024:.1f} MiB, {row['fds']:,} fds, CPU {row['cpu_pct']:.0f}% "
            f"(loop waiting {row['wait_pct']:.0f}%, others on its core {row['others_pct']:.0f}%), "
            f"lag {row['lag_ms']:.1f} ms, "
            f"{row['deliveries_per_s']:,.0f} deliveries/s, p99 {fmt(row['p99_ms'], 1)} ms, "
            f"churn +{row['connects']}/-{row['disconnects']}, {row['broadcasts']} broadcasts, "
            f"{row['room_messages']} room messages, {row['logins']} logins, "
            f"{row['failed']} failed, {row['dropped']} dropped")


def summary(res: dict[str, Any]) -> str:
    """Returns the line printed once the checks are done."""
    bad, seen, _ = _misses(res.get("check", {}))
    return (f"checked {seen:,} deliveries: {bad} missing, repeated, reordered or closed; fds "
            f"{res['baseline']['fds']} before, {res['after']['fds']} after "
            f"({res['after']['waited_s']} s); slow consumers left open "
            f"{res['slow'].get('slow_open')} of {res['slow'].get('slow')}")


def scan_log(path: str) -> dict[str, Any]:
    """Counts the server log's lines, its errors (level ERROR or CRITICAL, or a line that is not
    JSON and mentions a traceback or an error) and its warnings by message."""
    lines, errors, samples, warnings = 0, 0, [], {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            lines += 1
            try:
                record = json.loads(raw)
                level, message = record.get("level"), str(record.get("message"))
            except ValueError:
                level, message = None, raw.strip()
                if "Traceback" in raw or "Error" in raw:
                    level = "ERROR"
            if level in PROBLEMS:
                errors += 1
                if len(samples) < 5:
                    samples.append(message[:200])
            elif level == "WARNING":
                key = message[:60]
                warnings[key] = warnings.get(key, 0) + 1
    top = dict(sorted(warnings.items(), key=lambda kv: -kv[1])[:5])
    return {"lines": lines, "errors": errors, "samples": samples, "warnings": top}


def _table(rows: list[dict[str, Any]], interval: float) -> str:
    """Returns the per-interval table."""
    head = ["minute" if interval == 60 else "until s", "open", "RSS MiB", "fds", "CPU %",
            "loop wait %", "others %", "loop lag ms",
            "deliveries/s", "p50 ms", "p99 ms", "connects", "disconnects", "logins", "failed"]
    return md_table(head, [[
        str(r["interval"]) if interval == 60 else f"{r['t_s']:.0f}", fmt(r["open"], 0),
        fmt(r["rss_kib"] / 1024, 1), fmt(r["fds"], 0), fmt(r["cpu_pct"], 0),
        fmt(r["wait_pct"], 1), fmt(r.get("others_pct"), 1), fmt(r["lag_ms"], 1),
        fmt(r["deliveries_per_s"], 0), fmt(r["p50_ms"], 1), fmt(r["p99_ms"], 1),
        fmt(r["connects"], 0), fmt(r["disconnects"], 0), fmt(r["logins"], 0),
        fmt(r["failed"], 0)] for r in rows])


def _load_text(p: dict[str, Any], lag_source: str) -> str:
    """Returns the paragraph saying what ran at once and how the server was set up."""
    lag = ("the server's `events_loop_lag_seconds` gauge (the worst timer delay since the "
           "previous scrape), read every second" if lag_source == "metrics" else
           "the latency of `GET /health` probed every second from outside (this build has no "
           "lag gauge; the probe includes the health check's database round trip)")
    warm, k = p.get("warm_up", 2) * p["interval"], p.get("window", 1)
    window = ("one interval here" if k == 1
              else f"{k} intervals here, judged by the median of their p99s")
    return (f"All at once: a numbered broadcast every second to every client; {p['rooms']} "
            f"rooms of {p.get('members', '?')} members, each publishing a numbered message "
            f"every {p['room_interval']:g} s; {p['churn_rate']:g} connects and "
            f"{p['churn_rate']:g} disconnects a second ({p.get('churn_pool', '?')} churning "
            f"clients, each staying {p['churn_lifetime']:g} s, half leaving with a close frame "
            f"and half with a reset); {p['login_rate']:g} login a second; {p['slow']} slow "
            "consumers that stop reading, at the start and then each minute. The server runs "
            "with its defaults (heartbeat, rate limits, metrics) but for a per-address connect "
            "rate the churn fits in (every client comes from 8 addresses) and "
            f"`--history-ttl {p.get('history_ttl', 0):g}`: the recovery history, kept 600 s by "
            "default, is then full within the warm-up (with the default it grows for ten "
            "minutes by design, then holds). Memory and latency are judged after the warm-up "
            f"(the first {warm:g} s) against its last interval (latency over windows of at "
            f"least {WINDOW_SECONDS:g} s: {window}). Event-loop lag: {lag}. CPU % is "
            "the server process's; loop wait % the time its event loop was ready to run but "
            "waited for a CPU; others % the share of the server's core other processes took "
            f"(a window with an interval of more than {CPU_OTHERS:g}% is not judged on "
            "latency).")


def _after_text(report: dict[str, Any]) -> str:
    """Returns the paragraph on the state after the load: fds, memory, counts and the log."""
    b, a, s = report["baseline"], report["after"], report.get("slow", {})
    t, log, pub = report.get("traffic", {}), report.get("log", {}), report.get("publish", {})
    warnings = ", ".join(f'"{k}" x{v}' for k, v in log.get("warnings", {}).items()) or "none"
    return (f"Before the load {b['fds']:,} fds and {b['rss_kib'] / 1024:.1f} MiB; after it "
            f"{a['fds']:,} fds ({a['waited_s']} s after the churn stopped) and "
            f"{a['rss_kib'] / 1024:.1f} MiB. {fmt(t.get('broadcasts_acked'), 0)} broadcasts and "
            f"{fmt(pub.get('acked'), 0)} room messages acknowledged ({fmt(pub.get('skipped'), 0)} "
            "room messages not sent because the room's previous one was still unanswered); "
            f"{fmt(t.get('logins_ok'), 0)} logins (p99 {fmt(t.get('login_p99_ms'), 0)} ms); "
            f"{fmt(s.get('slow'), 0)} slow consumers, all closed by the server "
            f"({fmt(report.get('server_stats', {}).get('slow_consumers_dropped'), 0)} as slow "
            "consumers with 1013, the others by the heartbeat when their pong did not come) "
            f"unless the table says otherwise. The server logged {fmt(log.get('lines'), 0)} "
            f"lines; warnings: {warnings}.")


def section(report: dict[str, Any], json_name: str, image: str = "") -> str:
    """Returns the Soak section of docs/benchmarks.md for one run."""
    p, rows = report["plan"], report.get("rows", [])
    load = ", ".join(f"{x[0]:.2f} at the {when}" for when, x in (
        ("start", report.get("loadavg_start")), ("end", report.get("loadavg_end"))) if x)
    out = ["## Soak", "", f"Run {report.get('started', '?')} ({p['minutes']:g} minutes, "
           f"{p['connections']:,} connections), load average {load}; raw results in "
           f"`bench/results/{json_name}` (not committed).", ""]
    if report.get("note"):
        out += [f"**Conditions.** {report['note']}", ""]
    out += [_load_text(p, report.get("lag_source", "health")), "", _table(rows, p["interval"]),
            "", targets_table(report.get("targets", [])), ""]
    if report.get("error"):
        out += [f"The run failed: {report['error']}", ""]
    if "after" in report:
        out += [_after_text(report), ""]
    if image:
        out.append(f"![Soak: RSS, open fds, event-loop lag, deliveries/s and p99 latency over "
                   f"the run]({image})")
    return "\n".join(out).strip()


def put_section(page: str, text: str) -> str:
    """Returns page with the Soak section replaced, or added before "## History"."""
    start, end = MARKERS
    block = f"{start}\n{text}\n{end}"
    i, j = page.find(start), page.find(end)
    if 0 <= i < j:
        return page[:i] + block + page[j + len(end):]
    at = page.find("## History")
    if at < 0:
        return page.rstrip("\n") + "\n\n" + block + "\n"
    return page[:at] + block + "\n\n" + page[at:]


def write_section(path: str, text: str) -> None:
    """Writes the Soak section into the page at path, leaving the rest as it is."""
    with open(path, encoding="utf-8") as fh:
        page = fh.read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(put_section(page, text))


def load(path: str) -> dict[str, Any]:
    """Reads a saved run."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
