"""The reconnect storm's part of docs/benchmarks.md: a block that other runs keep.

A `--storm-only` run writes just this block into the existing page (write_storm_block), and a
regeneration from a run without the storm keeps the page's block (report.write_docs), so a
partial run never wipes the other sections.
"""

from __future__ import annotations

from typing import Any

from bench.schema import field, fmt
from bench.tables import md_table, status

__all__ = ["STORM_START", "STORM_END", "storm_summary", "render_storm_block",
           "write_storm_block", "replace_block"]

STORM_START = "<!-- reconnect-storm: written by bench/run.py (S1) -->"
STORM_END = "<!-- /reconnect-storm -->"

STORM_METHOD = (
    "**How S1 runs.** {clients} feed clients (real JWTs, {tabs} per user, over the load "
    "generator processes and source addresses 127.0.0.2+) connect; an admin publishes numbered "
    "`system.alert` broadcasts (`metadata.seq`) one after the other at {rate:.0f}/s through "
    "`POST /ws/broadcast`. After {before:.0f} s the server gets SIGTERM (it closes every socket "
    "with 1001; a clean stop keeps the feed's epoch and history) and is started again on the "
    "same data dir and port while the publisher keeps going (publishes refused during the "
    "restart are not acknowledged and not expected). Every client reconnects with exponential "
    "backoff and full jitter (0.2 s doubling, capped at 2 s) to `/ws?token=..&since=OFFSET&"
    "epoch=E`, OFFSET being the last logged event it got. A client is recovered when its "
    "welcome says `recovered: true` and the `missed` replayed events have arrived. After all "
    "have resumed, events flow {after:.0f} s more; then each client's numbers are checked "
    "against the acknowledged publishes: a gap is an acknowledged number never received, a "
    "duplicate one received twice, out of order one not above the number before it. Times "
    "are from the SIGTERM; handshakes/s and replayed/s are over the time from the restarted "
    "server listening to the last resume (peak: the busiest half second). Server CPU is the "
    "restarted process's own, from listening until every client resumed: it includes the "
    "handshakes (JWT, session lookup), the replays and the live fan-out meanwhile, so per "
    "replayed event it is an upper bound; \"net\" subtracts the CPU per second of the "
    "steady stream before the cut.")


def storm_summary(results: dict[str, Any]) -> str:
    """Returns the S1 table (markdown), or a line saying it did not run."""
    s = results.get("storm") or {}
    if not s:
        return "Reconnect storm (S1): not run."
    if s.get("error"):
        return f"Reconnect storm (S1): failed: {s['error']}"
    row = [fmt(s.get("clients"), 0), fmt(s.get("published"), 0),
           f"{fmt(s.get('shutdown_s'), 2)} + {fmt(s.get('restart_s'), 2)}",
           f"{fmt(s.get('recovered_clients'), 0)} / {fmt(s.get('not_recovered'), 0)}",
           fmt(s.get("recovery_p50_s"), 2), fmt(s.get("recovery_p99_s"), 2),
           fmt(s.get("recovery_max_s"), 2),
           f"{fmt(s.get('handshakes_per_s'), 0)} ({fmt(s.get('handshakes_per_s_peak'), 0)})",
           fmt(s.get("replayed"), 0), fmt(s.get("replayed_per_s"), 0),
           fmt(s.get("cpu_us_per_resume"), 0), fmt(s.get("cpu_us_per_replayed"), 1),
           fmt(s.get("cpu_us_per_replayed_net"), 1), fmt(s.get("gaps"), 0),
           fmt(s.get("duplicates"), 0), fmt(s.get("out_of_order"), 0)]
    return md_table(["clients", "events acked", "stop + start s", "recovered / not",
                     "p50 s", "p99 s", "max s", "handshakes/s (peak)", "replayed", "replayed/s",
                     "CPU us/resume", "CPU us/replayed", "net us/replayed", "gaps",
                     "duplicates", "out of order"], [row])


def render_storm_block(results: dict[str, Any], json_path: str = "") -> str:
    """Returns the page's reconnect-storm section between its markers."""
    s = results.get("storm") or {}
    cfg = results.get("config", {})
    load = field(results, "machine", "loadavg")
    rows = [[t["name"], fmt(t["value"], 2), f"{t['op']} {fmt(t['limit'], 2)}",
             f"**{status(t)}**",
             t.get("detail", "") + (f". Cause: {t['cause']}" if t.get("cause") else "")]
            for t in results.get("targets", []) if t["id"].startswith("storm_")]
    out = [STORM_START, "## Reconnect storm (S1)", "",
           f"Run {results.get('started', '?')} ({results.get('mode', '?')} mode)"
           + (f", load average at start {load}" if load else "")
           + (f"; raw results in `{json_path}` (not committed)." if json_path else "."), "",
           *([f"**Conditions.** {results['note']}", ""] if results.get("note") else []),
           storm_summary(results), ""]
    if rows:
        out += [md_table(["target", "value", "limit", "status", "detail"], rows), ""]
    if s and not s.get("error"):
        out += [f"Reconnect attempts {fmt(s.get('attempts'), 0)} (refused ones included) for "
                f"{fmt(s.get('resumed_clients'), 0)} resumes; {fmt(s.get('publish_failed'), 0)} "
                f"publishes refused during the restart; {fmt(s.get('received'), 0)} numbered "
                f"events received in all; welcome `missed` summed {fmt(s.get('missed'), 0)}.", ""]
    out += [STORM_METHOD.format(clients=cfg.get("storm_clients", "?"),
                                tabs=cfg.get("tabs", "?"),
                                rate=float(cfg.get("storm_rate", 0)),
                                before=float(cfg.get("storm_before", 0)),
                                after=float(cfg.get("storm_after", 0))), "",
            "`.venv/bin/python -m bench.run --storm-only [--quick]` runs only S1 and rewrites "
            "only this section.", STORM_END]
    return "\n".join(out)


def replace_block(page: str, block: str, start: str = STORM_START, end: str = STORM_END) -> str:
    """Returns page with its block between start and end replaced by block (or block put
    before "## Reproduce" when the page has none)."""
    i, j = page.find(start), page.find(end)
    if i >= 0 and j > i:
        return page[:i] + block + page[j + len(end):]
    at = page.find("## Reproduce")
    if at < 0:
        return page.rstrip("\n") + "\n\n" + block + "\n"
    return page[:at] + block + "\n\n" + page[at:]


def write_storm_block(results: dict[str, Any], md_path: str, json_path: str = "") -> str:
    """Writes only the storm section into the page at md_path; returns its path."""
    with open(md_path, encoding="utf-8") as fh:
        page = fh.read()
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(replace_block(page, render_storm_block(results, json_path)))
    return md_path
