"""The sections of the server-by-server workloads: W1-W5 with the burst, and the rooms."""

from __future__ import annotations

from typing import Any

from bench.report.format import field, fmt, label, md_table, number, run_line, targets_table
from bench.report.targets import broadcast_targets, room_targets

__all__ = ["broadcast_section", "rooms_section"]

COLUMNS = (  # the summary: header, path under a server's workloads, digits
    ("W1 conns", ("W1", "connections"), 0),
    ("W1 handshakes/s", ("W1", "handshakes_per_s"), 0),
    ("W1 RSS KiB/conn", ("W1", "rss_kib_per_conn"), 1),
    ("W2 msgs/s", ("W2", "msgs_per_s"), 0),
    ("W2 CPU us/msg", ("W2", "cpu_us_per_msg"), 2),
    ("burst CPU us/msg", ("burst", "cpu_us_per_msg"), 2),
    ("W2 p50 ms", ("W2", "latency", "p50_ms"), 1),
    ("W2 p99 ms", ("W2", "latency", "p99_ms"), 1),
    ("W2 max ms", ("W2", "latency", "max_ms"), 1),
    ("W4 healthy p99 ms", ("W4", "latency", "p99_ms"), 1),
    ("W4 RSS growth MiB", ("W4", "rss_growth_mib"), 1),
    ("W4 dropped", ("W4", "dropped_by_server"), 0),
    ("W5 p99 ms", ("W5", "latency", "p99_ms"), 1),
)
PHASES = (("W2", "W2 broadcast to all, one alert in flight (latency)"),
          ("W2sat", "W2 broadcast to all, four alerts in flight (throughput)"),
          ("W5", "W5 login storm during broadcasts (product only)"),
          ("W4", "W4 slow consumers (2% stop reading) during broadcasts"))


def _images(images: list[tuple[str, str]]) -> list[str]:
    """Returns the markdown lines of the plots, if any."""
    return [f"![{alt}]({path})" for alt, path in images] + [""] if images else []


def _summary(servers: dict[str, Any]) -> str:
    """The headline table: one row per server."""
    rows = []
    for name, res in servers.items():
        wl = dict(res.get("workloads", {}))
        growth = number(field(wl, "W4", "rss_growth_kib"))
        wl["W4"] = {**wl.get("W4", {}), "rss_growth_mib": None if growth is None
                    else growth / 1024}
        rows.append([label(name)] + [fmt(field(wl, *path), d) for _, path, d in COLUMNS])
    return md_table(["server"] + [c[0] for c in COLUMNS], rows)


def _phase_rows(servers: dict[str, Any], key: str) -> list[list[str]]:
    """The rows of one broadcast phase's detail table."""
    rows = []
    for name, res in servers.items():
        r = field(res, "workloads", *(("W2", "saturated") if key == "W2sat" else (key,)))
        if not r:
            continue
        lat = r.get("latency", {})
        row = [label(name), f"{r.get('broadcasts')}/{r.get('broadcasts_planned')}",
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
    return rows


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
         "auth in handshake"], rows), ""]
    head = ["server", "broadcasts", "recipients", "delivered", "msgs/s", "CPU us/msg", "p50 ms",
            "p99 ms", "max ms", "server core", "client core"]
    extra = {"W4": ["slow clients", "RSS growth MiB", "dropped by server"],
             "W5": ["logins", "login p50 ms"]}
    for key, title in PHASES:
        if rows := _phase_rows(servers, key):
            out += [f"### {title}", "", md_table(head + extra.get(key, []), rows), ""]
    w3 = field(servers, "product", "workloads", "W3")
    if w3:
        rows = []
        for key in ("few", "many"):
            r = w3.get(key) or {}
            got = r.get("events_received", {})
            rows.append([f"{fmt(w3.get(f'bystanders_{key}'), 0)} bystanders",
                         fmt(r.get("sends"), 0), fmt(r.get("loop_cpu_us_per_send"), 0),
                         fmt(r.get("cpu_us_per_send"), 0), fmt(r.get("wall_ms_per_send"), 2),
                         f"{got.get('user.updated', 0)} user.updated, "
                         f"{got.get('profile.updated', 0)} profile.updated "
                         f"(expected {r.get('events_expected_per_type')} each)"])
        out += ["### W3 targeted sends (product only)", "", md_table(
            ["phase", "sends", "IOLoop CPU us/send", "process CPU us/send", "wall ms/send",
             "events at the 3 tabs"], rows), "",
            f"Ratio many/few: **{fmt(w3.get('ratio'), 2)}** on the IOLoop thread (target <= "
            f"1.2), {fmt(w3.get('ratio_process'), 2)} for the whole process. Medians of 3 "
            "rounds. The bystanders receive nothing.", ""]
    return out


def broadcast_section(results: dict[str, Any], json_name: str,
                      images: list[tuple[str, str]]) -> str:
    """Returns the W1-W5 and burst section of one run."""
    m, cfg, servers = results.get("machine", {}), results.get("config", {}), results["servers"]
    notes = []
    for name, res in servers.items():
        notes += [f"- {label(name)}: {note}" for note in res.get("notes", [])]
        if res.get("error"):
            notes.append(f"- {label(name)}: run failed: {res['error']}")
        for key in ("W2", "W4", "W5"):
            util = number(field(res, "workloads", key, "client_core_util"))
            if util is not None and util > 0.9:
                notes.append(f"- {label(name)} {key}: the client core was {util:.0%} busy, so "
                             "the load generator may cap this number.")
    return "\n".join([
        "## Connections and broadcasts: W1-W5 and the burst", "",
        *run_line(results, json_name, f"{fmt(cfg.get('connections'), 0)} connections"),
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} "
        f"GiB RAM; {m.get('platform', '?')}. Python {m.get('python', '?')}, Tornado "
        f"{m.get('tornado', '?')}, websockets {m.get('websockets', '?')}, Node "
        f"{m.get('node', '?')} with ws {m.get('node_ws', '?')}; load generator on "
        f"{m.get('loadgen_loop', '?')}. Server pinned to core {cfg.get('server_core', 0)}, "
        f"clients to core {cfg.get('client_core', 1)}; `ulimit -n {cfg.get('nofile', 20000)}` "
        "per process.", "", _summary(servers), "", targets_table(broadcast_targets(results)), "",
        *(["Notes from this run:", "", *notes, ""] if notes else []), *_images(images),
        *_details(servers)]).rstrip()


def rooms_section(results: dict[str, Any], json_name: str,
                  images: list[tuple[str, str]]) -> str:
    """Returns the rooms section (R1 against every server, R2 for this product) of one run."""
    m, rooms, rows, details = results.get("machine", {}), results["rooms"], [], []
    for name, res in rooms.items():
        r1 = field(res, "workloads", "R1") or {}
        lat, conn = r1.get("latency", {}), field(res, "workloads", "R1connect") or {}
        rows.append([label(name), fmt(conn.get("connections"), 0), fmt(r1.get("published"), 0),
                     fmt(r1.get("msgs_per_s"), 0), fmt(r1.get("cpu_us_per_msg"), 2),
                     fmt(lat.get("p50_ms")), fmt(lat.get("p99_ms")),
                     fmt(field(res, "workloads", "R2", "ratio"), 2)])
        if r1:
            details.append([
                label(name), f"{fmt(r1.get('rooms'), 0)} x {fmt(r1.get('members_per_room'), 1)}",
                fmt(conn.get("connect_wall_s")),
                f"{fmt(r1.get('published'), 0)} ({fmt(r1.get('publish_rate'), 0)}/s)",
                f"{fmt(r1.get('delivered'), 0)}/{fmt(r1.get('expected'), 0)}",
                fmt(r1.get("msgs_per_s"), 0), fmt(r1.get("cpu_us_per_msg"), 2),
                fmt(r1.get("cpu_us_per_publish"), 0), fmt(lat.get("p50_ms")),
                fmt(lat.get("p99_ms")), fmt(lat.get("max_ms")),
                fmt(100 * (r1.get("server_core_util") or 0), 0) + "%",
                fmt(100 * (r1.get("client_core_util") or 0), 0) + "%"])
    out = ["## Rooms: R1 and R2", "", *run_line(results, json_name),
           f"Peers: python-socketio {m.get('python_socketio', '?')} on aiohttp "
           f"{m.get('aiohttp', '?')}; Node socket.io {m.get('node_socketio', '?')}.", "",
           md_table(["server", "R1 sockets", "R1 publishes", "R1 delivered msgs/s",
                     "R1 CPU us/delivery", "R1 p50 ms", "R1 p99 ms", "R2 ratio 10k/10"], rows),
           "", targets_table(room_targets(results)), "", *_images(images),
           "### R1 rooms: members publishing to their room", "", md_table(
               ["server", "rooms x members", "join s", "publishes", "delivered", "msgs/s",
                "CPU us/delivery", "CPU us/publish", "p50 ms", "p99 ms", "max ms", "server core",
                "client core"], details)]
    r2 = field(rooms, "product", "workloads", "R2")
    if r2:
        rows = []
        for k in ("few", "many"):
            r = r2.get(k) or {}
            rows.append([f"{fmt(r2.get(f'bystanders_{k}'), 0)} sockets in other rooms",
                         fmt(r.get("sends"), 0), fmt(r.get("loop_cpu_us_per_publish"), 0),
                         fmt(r.get("cpu_us_per_publish"), 0), fmt(r.get("wall_ms_per_publish"), 2),
                         ", ".join(str(x) for x in r.get("messages_at_tabs", []))])
        out += ["", "### R2 room isolation (product only)", "", md_table(
            ["phase", "publishes", "IOLoop CPU us/publish", "process CPU us/publish",
             "wall ms/publish", "messages at the 3 tabs (incl. warm-up)"], rows), "",
            f"Ratio many/few: **{fmt(r2.get('ratio'), 2)}** on the IOLoop thread (target <= "
            f"1.2), {fmt(r2.get('ratio_process'), 2)} for the whole process."]
    return "\n".join(out)
