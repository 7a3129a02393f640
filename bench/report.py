"""Writes docs/benchmarks.md from a results dict: `python -m bench.report RESULTS.json`.

render_markdown() is pure (unit-tested); write_docs() also draws the PNG plots (bench/plots.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # also runs as `python bench/report.py`
    sys.path.insert(0, ROOT)

from bench.cluster_report import (  # noqa: E402
    CLUSTER_END,
    CLUSTER_START,
    render_cluster_block,
)
from bench.plots import draw_plots  # noqa: E402
from bench.rooms_report import (  # noqa: E402
    ROOMS_METHOD,
    draw_rooms_plots,
    rooms_details,
    rooms_summary,
)
from bench.schema import LABELS, field, fmt, number  # noqa: E402
from bench.storm_report import (  # noqa: E402
    STORM_END,
    STORM_START,
    render_storm_block,
    replace_block,
    storm_summary,
)
from bench.tables import (  # noqa: E402
    COLUMNS,
    md_table,
    status,
    summary_rows,
    targets_table_text,
    text_table,
    workload_tables,
)
from bench.targets import compute_targets  # noqa: E402

__all__ = ["METHOD", "render_markdown", "write_docs", "main", "keep_block", "BLOCK_START",
           "BLOCK_END"]

# A section another tool writes into the page (bench/overhead.py); a regeneration keeps it.
BLOCK_START = "<!-- metrics-overhead: written by bench/overhead.py -->"
BLOCK_END = "<!-- /metrics-overhead -->"
# The before/after comparison of the coalesced writes and the session cache (issue 14), kept
# by hand from runs side by side with the websockets peer.
HOT_START = "<!-- hot-path: before/after runs side by side, kept by hand -->"
HOT_END = "<!-- /hot-path -->"


METHOD = """\
## How it is measured

- **Machine split.** Every server runs under `taskset -c 0`; the load generator (several
  processes, each with `ulimit -n 20000`) and the orchestrator run under `taskset -c 1`. Server
  CPU is the server process's own accounting (`utime + stime` from `/proc/<pid>/stat`, all
  threads) sampled before and after each workload; W3 uses the per-thread `schedstat` run time
  (nanoseconds) because each send costs only milliseconds. RSS is `VmRSS` from
  `/proc/<pid>/status`.
- **Clients.** Raw asyncio protocols on uvloop with a hand-written upgrade request and a
  minimal frame parser that reads the send timestamp out of the payload without decoding JSON.
  Connections bind 127.0.0.2-127.0.0.9 before connecting, so 10k+ sockets never run out of
  ports. The "client core" column is the load generator's CPU (all processes plus the
  orchestrator) over the wall time; near 100% the client, not the server, sets the pace.
- **Latency** is receipt time minus `metadata.t`, the time the orchestrator put into the alert
  just before sending it, for every delivered message (same clock, same machine).
- **W1** opens the connections 32 at a time per load-generator process; handshakes/s is
  connections over the wall time of that phase. For this product each handshake carries a
  real access JWT: signature check, then the user's token version and the session row are
  read from SQLite on the thread pool. RSS per connection is (RSS idle with all connections -
  RSS before any) / connections.
- **W2** sends alerts one after another, each as soon as the server acknowledged the previous
  one (this product: `POST /ws/broadcast` as an admin, answered after the fan-out loop; peers:
  a control WebSocket whose message the peer broadcasts before answering `ok <n>`), then waits
  until every client has every alert. Delivered msgs/s = messages received by clients / (last
  receipt - first send). CPU us/msg = server CPU over the phase / delivered messages. A second
  W2 run keeps four alerts in flight; on this box it is no faster for any server (neither the
  server nor the client process reaches 100% of its core: loopback delivery of the backlog
  moves into the kernel's softirq threads, which no process is charged for), so the headline
  numbers come from the one-in-flight run and the four-in-flight run is listed for reference.
- **W3** (product only) sends `PATCH /api/v1/users/me` as one user with 3 open tabs (each
  send emits `user.updated` and `profile.updated` to that user; no admin is connected) with 10
  and then with 10k bystanders connected, in 3 rounds each (medians). The target is checked on
  the IOLoop thread's CPU (HTTP, JWT, handler, hub fan-out); the whole-process figure adds the
  thread pool's SQLite work, whose commit time follows the disk, not the bystanders.
- **W4** pauses reading on every 50th client (2%; those clients were opened with a 4 KiB
  receive buffer), then runs up to 300 broadcasts with 512 bytes of padding (capped at 50 s),
  sampling server RSS every 250 ms. Healthy latency excludes the paused clients. This product
  closes a connection with 1013 once it has more than 256 queued messages or 1 MiB unsent; the
  peers have no such limit (websockets and Node ws buffer without bound, the naive Tornado peer
  too). Each stalled socket first fills its kernel send buffer: the peers let Linux grow it
  to `tcp_wmem`'s maximum (4 MiB here); this product caps it (`--socket-send-buffer`, 256 KiB,
  which Linux doubles). The slow clients' backlog in this workload (~200 KB each within the
  time cap) fits in either, so no server's RSS grows and no 1013 limit is reached. The 1013
  path itself is covered by tests/test_hub.py (unit) and tests/test_ws.py (a real client
  that stops reading).
- **W5** (product only) runs concurrent `POST /api/v1/auth/login` loops during a W2-style
  run. argon2id runs in the server's hashing pool (2 threads at nice 10), which shares core 0
  with the event loop.

## What keeps this server fast

- **Encode once, write direct.** Each event is serialised and framed once per publish; the
  same bytes go to every recipient through a non-blocking `socket.send` when the
  connection has nothing queued (hub/transport.py), skipping Tornado's per-write Future.
  The naive peer's `write_message` per client costs about 6x more CPU per message.
- **Indexes, not scans.** Targeted sends look recipients up by user, role or session (W3).
- **A lean upgrade.** A well-formed `/ws` upgrade skips Tornado's HTTP/1.1 connection,
  router and request task (handlers/upgrade.py, the upgrade lane; anything else is handed
  back to Tornado), and the 101 response is written in one piece and leaves in the same
  `send()` as the welcome (handlers/wsframes.py).
- **Small idle sockets.** After the upgrade a socket drops its request headers, query
  string, user row and Tornado's per-instance guard attributes (about 5 KiB each), keeps a
  two-slot connection object instead of Tornado's `HTTP1Connection`, and its handler and
  protocol objects keep CPython's shared-key attribute dicts.
- **No full-heap GC pauses.** CPython's default thresholds ran a full collection each time
  the heap grew by a quarter: pauses of up to ~0.5 s while 10k sockets connected. The server
  freezes its start-up objects and raises the young-generation threshold (main.py
  `tune_gc`), which also raised handshakes per second by about 60%.
- **Hashing off the loop's core share.** Password hashing has its own low-priority pool, so
  a login storm barely moves fan-out latency (W5).
- **Peers.** Small scripts in `bench/peers/`: `websockets` {websockets} with
  `broadcast()` (compression off), plain Tornado calling `write_message(dict)` per client
  (serialises and frames once per client: the naive baseline), Node {node} with `ws` {node_ws}
  sending the received buffer to each client (`perMessageDeflate: false`). Peers do no
  authentication in the handshake (this product does), send the same kind of welcome frame,
  and broadcast the same JSON shape as the product's `system.alert`. All servers use the same
  ping interval ({ping:.0f} s, so no ping storm lands inside a measurement) and the stock
  asyncio loop for the Python servers.
- **The raw send() floor** (`bench/peers/floor_server.py`) is a reference, not a server: the
  `websockets` peer's handshakes, but a broadcast frames the message once and writes it to
  each socket's descriptor in a bare loop, with no per-connection work at all. Its CPU per
  delivery is about what one write per delivery costs the kernel (loopback TCP, the
  receiving side's processing included) plus the loop; a server's distance from it is what
  its own per-socket work adds.
"""


def render_markdown(results: dict[str, Any], json_path: str = "",
                    images: list[tuple[str, str]] | None = None) -> str:
    """Returns docs/benchmarks.md for one results dict; images are (alt, relative path)."""
    m = results.get("machine", {})
    cfg = results.get("config", {})
    targets = results.get("targets") or compute_targets(results)
    out = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/report.py from a `make bench` run; do not edit by hand. -->",
        "",
        f"Run {results.get('started', '?')} ({results.get('mode', '?')} mode, "
        f"{fmt(cfg.get('connections'), 0)} connections, {fmt(results.get('duration_s'), 0)} s)"
        + (f"; raw results in `{json_path}` (not committed)." if json_path else "."),
        "",
        "## Machine",
        "",
        f"- CPU: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB RAM; {m.get('platform', '?')}",
        f"- Python {m.get('python', '?')}, Tornado {m.get('tornado', '?')}, websockets "
        f"{m.get('websockets', '?')}, Node {m.get('node', '?')} with ws {m.get('node_ws', '?')}; "
        f"load generator on {m.get('loadgen_loop', '?')}",
        f"- Server pinned to core {cfg.get('server_core', 0)}, clients to core "
        f"{cfg.get('client_core', 1)}; `ulimit -n {cfg.get('nofile', 20000)}` per process",
    ]
    if results.get("rooms"):
        out.insert(-1, f"- Rooms peers: python-socketio {m.get('python_socketio', '?')} on "
                   f"aiohttp {m.get('aiohttp', '?')}; Node socket.io {m.get('node_socketio', '?')}")
    if results.get("note"):
        out[5:5] = ["", f"**Conditions.** {results['note']}"]
    out += ["", "## Results", ""]
    if results.get("servers"):
        out += [md_table([h for _, h in COLUMNS],
                         [[r[k] for k, _ in COLUMNS] for r in summary_rows(results)]), ""]
    if results.get("rooms"):
        out += ["Rooms workload (R1, R2):", "", rooms_summary(results), ""]
    if results.get("storm"):
        out += ["Reconnect storm (S1; targets and details in its section below):", "",
                storm_summary(results), ""]
    out += ["## Targets", ""]
    rows = []
    for t in (t for t in targets if not t["id"].startswith("storm_")):
        detail = t.get("detail", "")
        if t.get("cause"):
            detail = (detail + ". " if detail else "") + "Cause: " + t["cause"]
        rows.append([t["name"], fmt(t["value"], 2), f"{t['op']} {fmt(t['limit'], 2)}",
                     fmt(t["ratio"], 2), f"**{status(t)}**", detail])
    out.append(md_table(["target", "value", "limit", "value/limit", "status", "detail"], rows))
    missed = [t for t in targets if t["met"] is False and not t["id"].startswith("storm_")]
    out += ["", ("All measured targets are met." if not missed else
                 f"{len(missed)} target(s) missed; the cause is given beside each.")]
    notes = []
    for name, res in results.get("servers", {}).items():
        for note in res.get("notes", []):
            notes.append(f"- {LABELS.get(name, name)}: {note}")
        if res.get("error"):
            notes.append(f"- {LABELS.get(name, name)}: run failed: {res['error']}")
        for key in ("W2", "W4", "W5"):
            util = number(field(res, "workloads", key, "client_core_util"))
            if util is not None and util > 0.9:
                notes.append(f"- {LABELS.get(name, name)} {key}: the client core was "
                             f"{util:.0%} busy, so the load generator may cap this number.")
    if notes:
        out += ["", "Notes from this run:", "", *notes]
    if images:
        out += ["", "## Plots", ""]
        out += [f"![{alt}]({path})" for alt, path in images]
    out += ["", "## Workloads in detail", "", workload_tables(results), ""]
    if results.get("rooms"):
        out += [rooms_details(results), ""]
    out.append(METHOD.format(websockets=m.get("websockets", "?"), node=m.get("node", "?"),
                             node_ws=m.get("node_ws", "?"),
                             ping=float(cfg.get("ping_interval_s", 300))))
    if results.get("rooms"):
        rate, secs = float(cfg.get("room_rate", 0)), float(cfg.get("room_seconds", 0))
        out.append("### The rooms workload\n\n" + ROOMS_METHOD.format(
            sio=m.get("python_socketio", "?"), aiohttp=m.get("aiohttp", "?"),
            node_sio=m.get("node_socketio", "?"), rooms=cfg.get("rooms", "?"),
            members=cfg.get("members", "?"), users=cfg.get("users", "?"), seconds=secs,
            rate=rate, per_room=rate * secs / max(1, cfg.get("rooms", 1)),
            iso=cfg.get("iso_sends", "?"), few=cfg.get("iso_few", "?")))
    if results.get("storm"):
        out += [render_storm_block({**results, "targets": targets}, json_path), ""]
    out += [
        "## Reproduce",
        "",
        "```",
        "make bench        # full run (W1-W5 within 560 s, rooms within 240 s, S1 within 150 s,",
        "                  # C1-C3 within 600 s; the cluster workloads need PostgreSQL, "
        "redis-server and nginx)",
        "make bench-quick  # two to three minutes, smaller counts; for development",
        "make bench-metrics  # W2 with --metrics on and off, side by side",
        "make bench-paired   # CPU per handshake and per delivery, every server up at once",
        "```",
        "",
        "Both install `requirements-bench.txt` into `.venv` and `npm ci` the Node peer if "
        "`bench/peers/node/node_modules` is missing. "
        "`.venv/bin/python -m bench.run --servers product,websockets --profile` runs a subset "
        "and records a py-spy profile of this server during W2 into `bench/results/`; "
        "`--rooms-only` and `--no-rooms` run only or skip the rooms workload, `--storm-only` and "
        "`--no-storm` the reconnect storm (a `--storm-only` run rewrites only its section), "
        "`--cluster-only` and `--no-cluster` the cluster workloads C1-C3 (likewise), and "
        "`--note` puts the run's conditions on this page.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report RESULTS.json`: regenerates docs/benchmarks.md from saved results."""
    import argparse
    import json

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", help="a bench/results/<timestamp>.json file")
    parser.add_argument("--docs", default=os.path.join(root, "docs", "benchmarks.md"))
    parser.add_argument("--img-dir", default=os.path.join(root, "docs", "img"))
    parser.add_argument("--note", default=None, help="conditions of the run, shown on the page")
    args = parser.parse_args(argv)
    with open(args.results, encoding="utf-8") as fh:
        results = json.load(fh)
    if args.note is not None:
        results["note"] = args.note
    results["targets"] = compute_targets(results)
    print(text_table(results))
    print()
    print(targets_table_text(results))
    rel = os.path.relpath(os.path.abspath(args.results), root)
    print(write_docs(results, args.docs, args.img_dir, rel))
    return 0


def write_docs(results: dict[str, Any], md_path: str, img_dir: str, json_path: str = "") -> str:
    """Draws the plots into img_dir and writes the markdown page; returns its path."""
    written = draw_plots(results, img_dir) if results.get("servers") else []
    written += draw_rooms_plots(results, img_dir)
    rel = os.path.relpath(img_dir, os.path.dirname(os.path.abspath(md_path)))
    images = [(alt, f"{rel}/{fname}") for alt, fname in written]
    text = render_markdown(results, json_path, images)
    if os.path.exists(md_path):
        with open(md_path, encoding="utf-8") as fh:
            old = fh.read()
        text = keep_block(old, text)
        start, end = old.find(STORM_START), old.find(STORM_END)
        if STORM_START not in text and 0 <= start < end:  # a run without S1 keeps the last one
            text = replace_block(text, old[start:end + len(STORM_END)])
        start, end = old.find(CLUSTER_START), old.find(CLUSTER_END)
        if not results.get("cluster") and 0 <= start < end:  # likewise C1-C3
            text = replace_block(text, old[start:end + len(CLUSTER_END)], CLUSTER_START,
                                 CLUSTER_END)
    if results.get("cluster"):
        text = replace_block(text, render_cluster_block(results, json_path), CLUSTER_START,
                             CLUSTER_END)
    os.makedirs(os.path.dirname(os.path.abspath(md_path)), exist_ok=True)
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return md_path


def keep_block(old: str, new: str) -> str:
    """Returns new with old's blocks written apart (metrics overhead, wire formats, the
    hot-path comparison, the paired rounds) that new lacks, put back before "## Reproduce"."""
    from bench.paired_report import PAIRED_END, PAIRED_START
    from bench.wire_report import WIRE_END, WIRE_START

    for first, last in ((BLOCK_START, BLOCK_END), (WIRE_START, WIRE_END), (HOT_START, HOT_END),
                        (PAIRED_START, PAIRED_END)):
        start, end = old.find(first), old.find(last)
        if start < 0 or end < start or first in new:
            continue
        block = old[start:end + len(last)] + "\n\n"
        at = new.find("## Reproduce")
        new = new[:at] + block + new[at:] if at >= 0 else new.rstrip("\n") + "\n\n" + block
    return new


if __name__ == "__main__":
    raise SystemExit(main())
