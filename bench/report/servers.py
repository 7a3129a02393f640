"""The sections of the server-by-server workloads: W1-W5 with the burst, and the rooms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report.format import field, fmt, label, md_table, number, run_line, targets_table
from bench.report.targets import broadcast_targets, room_targets

__all__ = ["broadcast_section", "rooms_section"]

COLUMNS = (  # the summary: header, path under a server's workloads, digits, scale
    ("W1 conns", ("W1", "connections"), 0, 1),
    ("W1 handshakes/s", ("W1", "handshakes_per_s"), 0, 1),
    ("W1 RSS KiB/conn", ("W1", "rss_kib_per_conn"), 1, 1),
    ("W2 msgs/s", ("W2", "msgs_per_s"), 0, 1),
    ("W2 CPU us/msg", ("W2", "cpu_us_per_msg"), 2, 1),
    ("burst CPU us/msg", ("burst", "cpu_us_per_msg"), 2, 1),
    ("W2 p50 ms", ("W2", "latency", "p50_ms"), 1, 1),
    ("W2 p99 ms", ("W2", "latency", "p99_ms"), 1, 1),
    ("W2 max ms", ("W2", "latency", "max_ms"), 1, 1),
    ("W4 healthy p99 ms", ("W4", "latency", "p99_ms"), 1, 1),
    ("W4 RSS growth MiB", ("W4", "rss_growth_kib"), 1, 1 / 1024),
    ("W4 dropped", ("W4", "dropped_by_server"), 0, 1),
    ("W5 p99 ms", ("W5", "latency", "p99_ms"), 1, 1),
)
PHASES = (("W2", "W2 broadcast to all, one alert in flight (latency)"),
          ("W2sat", "W2 broadcast to all, four alerts in flight (throughput)"),
          ("W5", "W5 login storm during broadcasts (product only)"),
          ("W4", "W4 slow consumers (2% stop reading) during broadcasts"))
EXTRA = {"W4": ["slow clients", "RSS growth MiB", "dropped by server"],
         "W5": ["logins", "login p50 ms"]}
RUN = ["msgs/s", "CPU us/msg", "p50 ms", "p99 ms", "max ms", "server core", "client core"]


def _run(r: dict[str, Any]) -> list[str]:
    """Returns a phase's throughput, CPU, latency and core-use cells (the RUN columns)."""
    lat = r.get("latency", {})
    return [fmt(r.get("msgs_per_s"), 0), fmt(r.get("cpu_us_per_msg"), 2),
            *(fmt(lat.get(k)) for k in ("p50_ms", "p99_ms", "max_ms")),
            *(fmt(100 * (r.get(k) or 0), 0) + "%" for k in ("server_core_util",
                                                            "client_core_util"))]


def _few_many(w: dict[str, Any], unit: str, who: str, last: str,
              cell: Callable[[dict[str, Any]], str]) -> list[str]:
    """Returns the table of a few-vs-many comparison (W3, R2) and its ratio."""
    rows = []
    for k in ("few", "many"):
        r = w.get(k) or {}
        rows.append([f"{fmt(w.get(f'bystanders_{k}'), 0)} {who}", fmt(r.get("sends"), 0),
                     fmt(r.get(f"loop_cpu_us_per_{unit}"), 0),
                     fmt(r.get(f"cpu_us_per_{unit}"), 0), fmt(r.get(f"wall_ms_per_{unit}"), 2),
                     cell(r)])
    return ["", md_table(["phase", f"{unit}es" if unit == "publish" else f"{unit}s",
                          f"IOLoop CPU us/{unit}", f"process CPU us/{unit}", f"wall ms/{unit}",
                          last], rows), "",
            f"Ratio many/few: **{fmt(w.get('ratio'), 2)}** on the IOLoop thread (target <= 1.2), "
            f"{fmt(w.get('ratio_process'), 2)} for the whole process (medians of the rounds)."]


def _details(servers: dict[str, Any]) -> list[str]:
    """The per-workload detail tables."""
    rows = [[label(name), fmt(w1.get("connections"), 0), fmt(w1.get("failed"), 0),
             fmt(w1.get("connect_wall_s")), fmt(w1.get("handshakes_per_s"), 0),
             fmt(w1.get("handshake_ms_mean")), fmt(w1.get("cpu_us_per_handshake"), 0),
             fmt((w1.get("rss_base_kib") or 0) / 1024), fmt((w1.get("rss_idle_kib") or 0) / 1024),
             fmt(w1.get("rss_kib_per_conn")), str(w1.get("auth", "-"))]
            for name, res in servers.items() if (w1 := field(res, "workloads", "W1"))]
    out = ["### W1 idle connections", "", md_table(
        ["server", "open", "failed", "connect s", "handshakes/s", "handshake ms (mean)",
         "server CPU us/handshake", "RSS before MiB", "RSS idle MiB", "KiB/conn",
         "auth in handshake"], rows)]
    for key, title in PHASES:
        rows = []
        for name, res in servers.items():
            r = field(res, "workloads", *(("W2", "saturated") if key == "W2sat" else (key,)))
            if not r:
                continue
            row = [label(name), f"{r.get('broadcasts')}/{r.get('broadcasts_planned')}",
                   fmt(r.get("recipients_per_broadcast"), 0),
                   f"{fmt(r.get('delivered'), 0)}/{fmt(r.get('expected'), 0)}", *_run(r)]
            if key == "W4":
                row += [fmt(r.get("paused"), 0), fmt(r.get("rss_growth_kib"), 1, 1 / 1024),
                        fmt(r.get("dropped_by_server"), 0)]
            elif key == "W5":
                side = r.get("side", {})
                row += [f"{side.get('logins_ok', 0)} ok / {side.get('logins_failed', 0)} failed",
                        fmt(side.get("login_p50_ms"), 0)]
            rows.append(row)
        if rows:
            out += ["", f"### {title}", "", md_table(
                ["server", "broadcasts", "recipients", "delivered", *RUN, *EXTRA.get(key, [])],
                rows)]
    if w3 := field(servers, "product", "workloads", "W3"):
        out += ["", "### W3 targeted sends (product only)", *_few_many(
            w3, "send", "bystanders", "events at the 3 tabs", lambda r: (
                f"{r.get('events_received', {}).get('user.updated', 0)} user.updated, "
                f"{r.get('events_received', {}).get('profile.updated', 0)} profile.updated "
                f"(expected {r.get('events_expected_per_type')} each)"))]
    if api := field(servers, "product", "workloads", "API1"):
        out += ["", "### API1 server API notify to one user (product only)", "", md_table(
            ["requests", "concurrency", "requests/s", "p50 ms", "p99 ms", "CPU us/request",
             "delivered"],
            [[fmt(api["requests"], 0), fmt(api["concurrency"], 0), fmt(api["requests_per_s"], 0),
              fmt(api["p50_ms"], 1), fmt(api["p99_ms"], 1), fmt(api["cpu_us_per_request"], 0),
              f"{api['delivered']} of {api['expected']}"]]),
            "", "Every socket of W1 stays open; each request is a feed event for the target "
            "user's 3 tabs, logged in the outbox and numbered like any other."]
    return out


def broadcast_section(results: dict[str, Any], json_name: str, images: list[str]) -> str:
    """Returns the W1-W5 and burst section of one run."""
    m, cfg, servers = results.get("machine", {}), results.get("config", {}), results["servers"]
    notes = []
    for name, res in servers.items():
        notes += [f"- {label(name)}: {note}" for note in res.get("notes", [])]
        notes += [f"- {label(name)}: run failed: {res['error']}"] if res.get("error") else []
        for key in ("W2", "W4", "W5"):
            if (util := number(field(res, "workloads", key, "client_core_util"))) and util > 0.9:
                notes.append(f"- {label(name)} {key}: the client core was {util:.0%} busy, so "
                             "the load generator may cap this number.")
    rows = [[label(n), *(fmt(field(r, "workloads", *path), digits, scale)
                         for _, path, digits, scale in COLUMNS)] for n, r in servers.items()]
    return "\n".join(["## Connections and broadcasts: W1-W5 and the burst", "",
        *run_line(results, json_name, f"{fmt(cfg.get('connections'), 0)} connections"),
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} "
        f"GiB RAM; {m.get('platform', '?')}. Python {m.get('python', '?')}, Tornado "
        f"{m.get('tornado', '?')}, websockets {m.get('websockets', '?')}, Node "
        f"{m.get('node', '?')} with ws {m.get('node_ws', '?')}; load generator on "
        f"{m.get('loadgen_loop', '?')}. Server pinned to core {cfg.get('server_core', 0)}, "
        f"clients to core {cfg.get('client_core', 1)}; `ulimit -n {cfg.get('nofile', 20000)}` "
        "per process.", "", md_table(["server", *(c[0] for c in COLUMNS)], rows), "",
        targets_table(broadcast_targets(results)), "",
        *(["Notes from this run:", "", *notes, ""] if notes else []),
        *images, "", *_details(servers)])


def rooms_section(results: dict[str, Any], json_name: str, images: list[str]) -> str:
    """Returns the rooms section (R1 against every server, R2 for this product) of one run."""
    m, rooms = results.get("machine", {}), results["rooms"]
    rows = [[label(name), fmt(field(res, "workloads", "R1connect", "connections"), 0),
             fmt(field(res, "workloads", "R1connect", "connect_wall_s")),
             f"{fmt(r1.get('rooms'), 0)} x {fmt(r1.get('members_per_room'), 1)}",
             f"{fmt(r1.get('published'), 0)} ({fmt(r1.get('publish_rate'), 0)}/s)",
             f"{fmt(r1.get('delivered'), 0)}/{fmt(r1.get('expected'), 0)}",
             fmt(r1.get("cpu_us_per_publish"), 0), *_run(r1)]
            for name, res in rooms.items() if (r1 := field(res, "workloads", "R1"))]
    out = ["## Rooms: R1 and R2", "", *run_line(results, json_name),
           f"Peers: python-socketio {m.get('python_socketio', '?')} on aiohttp "
           f"{m.get('aiohttp', '?')}; Node socket.io {m.get('node_socketio', '?')}.", "",
           md_table(["server", "sockets", "join s", "rooms x members", "publishes", "delivered",
                     "CPU us/publish", "msgs/s", "CPU us/delivery", *RUN[2:]], rows), "",
           targets_table(room_targets(results)), "", *images, ""]
    if r2 := field(rooms, "product", "workloads", "R2"):
        out += ["### R2 room isolation (product only)", *_few_many(
            r2, "publish", "sockets in other rooms", "messages at the 3 tabs (incl. warm-up)",
            lambda r: ", ".join(str(x) for x in r.get("messages_at_tabs", [])))]
    return "\n".join(out)
