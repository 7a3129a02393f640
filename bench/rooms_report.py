"""The rooms workload in the report: its summary and detail tables, its method and plots."""

from __future__ import annotations

import os
from typing import Any

from bench.schema import LABELS, field, fmt, number
from bench.tables import md_table

__all__ = ["ROOMS_METHOD", "rooms_summary", "rooms_details", "draw_rooms_plots"]

ROOMS_METHOD = """\
- **R1 rooms** (this product, python-socketio {sio} on aiohttp {aiohttp}, Node socket.io
  {node_sio}): {rooms} rooms x {members} members, one socket per member, each socket in one
  room. This product's clients open `/ws` with a real JWT (member i is bench user
  i mod {users}, so every room holds {members} different users) and send `subscribe
  {{channel: "room:rN"}}`; the peers' clients speak raw Engine.IO v4 / Socket.IO v5 over
  WebSocket (bench/sio.py: `40` connect, a `join` event that the peer answers with `joined`
  after `enter_room` / `socket.join`, `3` to every `2` ping). Then for {seconds:.0f} s the load
  generators publish {rate:.0f} messages per second in total, evenly spaced, each from a
  random member (so about {per_room:.0f} per room), with the send time and a sequence number
  in the body: this product's `publish {{channel, data}}` (delivered as `channel.message`,
  sender included, and stored by the write-behind batches on the thread pool), the peers'
  `publish` event emitted back as `msg` to the room (python-socketio `emit("msg", data,
  room=...)`, Node `io.to(room).emit(...)`, sender included, nothing stored). Latency is
  receipt time minus the send time in the body, at every receiver. Delivered msgs/s =
  messages received / (last receipt - first publish); CPU per delivery = server process CPU
  over the phase / messages received (it includes parsing the publishes, and for this product
  the SQLite writes, spread over {members} deliveries each). On a machine shared with other
  CPU-heavy work the tail moves most: in development runs on this box p99 swung between
  about 15 ms and 800 ms from one run to the next, for this server and Node socket.io alike,
  while CPU per delivery stayed within about 10%.
- **R2 room isolation** (this product only): one user's 3 tabs subscribe to a small room;
  one tab publishes {iso} messages one at a time, each once all 3 tabs have the previous one,
  first with {few} sockets in other rooms, then with all R1 sockets connected (idle). The
  ratio is the IOLoop thread's CPU per publish (schedstat), median of 5 rounds; the whole
  process figure adds the write-behind SQLite batches on the thread pool.
"""


def rooms_summary(results: dict[str, Any]) -> str:
    """The rooms headline table: one row per server."""
    rows = []
    for name, res in results.get("rooms", {}).items():
        r1 = field(res, "workloads", "R1") or {}
        lat = r1.get("latency", {})
        rows.append([LABELS.get(name, name),
                     fmt(field(res, "workloads", "R1connect", "connections"), 0),
                     fmt(r1.get("published"), 0), fmt(r1.get("msgs_per_s"), 0),
                     fmt(r1.get("cpu_us_per_msg"), 2), fmt(lat.get("p50_ms")),
                     fmt(lat.get("p99_ms")), fmt(field(res, "workloads", "R2", "ratio"), 2)])
    if not rows:
        return ""
    return md_table(["server", "R1 sockets", "R1 publishes", "R1 delivered msgs/s",
                     "R1 CPU us/delivery", "R1 p50 ms", "R1 p99 ms", "R2 ratio 10k/10"], rows)


def rooms_details(results: dict[str, Any]) -> str:
    """The R1 and R2 detail tables in markdown (empty when the run had no rooms workload)."""
    rooms = results.get("rooms", {})
    rows = []
    for name, res in rooms.items():
        r1 = field(res, "workloads", "R1")
        if not r1:
            continue
        lat = r1.get("latency", {})
        conn = field(res, "workloads", "R1connect") or {}
        rows.append([LABELS.get(name, name), f"{fmt(r1.get('rooms'), 0)} x "
                     f"{fmt(r1.get('members_per_room'), 1)}", fmt(conn.get("connect_wall_s")),
                     f"{fmt(r1.get('published'), 0)} ({fmt(r1.get('publish_rate'), 0)}/s)",
                     f"{fmt(r1.get('delivered'), 0)}/{fmt(r1.get('expected'), 0)}",
                     fmt(r1.get("msgs_per_s"), 0), fmt(r1.get("cpu_us_per_msg"), 2),
                     fmt(r1.get("cpu_us_per_publish"), 0), fmt(lat.get("p50_ms")),
                     fmt(lat.get("p99_ms")), fmt(lat.get("max_ms")),
                     fmt(100 * (r1.get("server_core_util") or 0), 0) + "%",
                     fmt(100 * (r1.get("client_core_util") or 0), 0) + "%"])
    parts = []
    if rows:
        parts.append("### R1 rooms: members publishing to their room\n\n" + md_table(
            ["server", "rooms x members", "join s", "publishes", "delivered", "msgs/s",
             "CPU us/delivery", "CPU us/publish", "p50 ms", "p99 ms", "max ms", "server core",
             "client core"], rows))
    r2 = field(rooms, "product", "workloads", "R2")
    if r2:
        rows = []
        for key, by in (("few", "bystanders_few"), ("many", "bystanders_many")):
            r = r2.get(key) or {}
            rows.append([f"{fmt(r2.get(by), 0)} sockets in other rooms", fmt(r.get("sends"), 0),
                         fmt(r.get("loop_cpu_us_per_publish"), 0),
                         fmt(r.get("cpu_us_per_publish"), 0), fmt(r.get("wall_ms_per_publish"), 2),
                         ", ".join(str(x) for x in r.get("messages_at_tabs", []))])
        parts.append("### R2 room isolation (product only)\n\n" + md_table(
            ["phase", "publishes", "IOLoop CPU us/publish", "process CPU us/publish",
             "wall ms/publish", "messages at the 3 tabs (incl. warm-up)"], rows)
            + f"\n\nRatio many/few: **{fmt(r2.get('ratio'), 2)}** on the IOLoop thread (target "
            f"<= 1.2), {fmt(r2.get('ratio_process'), 2)} for the whole process.")
    return "\n\n".join(parts)


def draw_rooms_plots(results: dict[str, Any], img_dir: str) -> list[tuple[str, str]]:
    """Draws the rooms CPU bars and latency CDF into img_dir; returns (alt, file name) pairs."""
    rooms = {n: r for n, r in results.get("rooms", {}).items() if field(r, "workloads", "R1")}
    if not rooms:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rooms)
    labels = [LABELS.get(n, n).replace(" (", "\n(") for n in names]
    values = [number(field(rooms[n], "workloads", "R1", "cpu_us_per_msg")) or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    ax.bar(labels, values, color=["#1f77b4" if n == "product" else "#9aa5b1" for n in names])
    for i, v in enumerate(values):
        ax.annotate(fmt(v, 2), (i, v), ha="center", va="bottom", fontsize=8)
    title = "R1 server CPU per room delivery (lower is better)"
    ax.set_title(title)
    ax.set_ylabel("microseconds")
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "bench-rooms-cpu.png"), dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for n in names:
        pts = field(rooms[n], "workloads", "R1", "latency_quantiles") or []
        ax.plot([p[1] for p in pts], [p[0] for p in pts], label=LABELS.get(n, n),
                linewidth=1.4 if n == "product" else 1)
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("R1 publish-to-delivery latency CDF")
    ax.axvline(200, color="#d62728", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "bench-rooms-latency.png"), dpi=100)
    plt.close(fig)
    return [(title, "bench-rooms-cpu.png"),
            ("R1 publish-to-delivery latency CDF", "bench-rooms-latency.png")]
