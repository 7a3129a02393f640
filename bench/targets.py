"""Checks one run's results against the issue's targets, with the known cause of each miss."""

from __future__ import annotations

from typing import Any

from bench.schema import field, fmt, number, throughput

__all__ = ["CAUSES", "compute_targets", "room_targets", "storm_targets", "cluster_targets"]

# Why a target is missed, when the cause is known from profiling and reading the numbers;
# shown next to a missed target only.
CAUSES: dict[str, str] = {
    "cpu_abs": "py-spy shows about 80% of the fan-out inside the `socket.send` syscall itself "
    "(loopback TCP, which also runs the receiving side's network stack on the sender's CPU); "
    "the hub's Python work is about 2 us per message, so the rest is the kernel's.",
    "rss_per_conn": "the naive Tornado peer already needs ~16 KiB per idle connection: "
    "Tornado keeps each socket's handshake alive as a chain of suspended coroutines "
    "(_execute -> get() -> accept_connection -> the frame-reading loop) beside its "
    "RequestHandler, HTTPServerRequest, IOStream and WebSocketProtocol13. handlers/ws.py "
    "already drops the request headers, query string, user row and Tornado's per-instance "
    "guard attributes after the upgrade; what is left is Tornado's own per-socket state.",
    "w3_ratio": "the per-send cost is milliseconds of HTTP, JWT and SQLite work with run-to-run "
    "noise of that order; the hub's part (3 recipients) is microseconds.",
    "cpu_vs_websockets_07": "W2 publishes one event per IOLoop iteration, which coalescing "
    "cannot merge: each delivery is one send() per socket, and that syscall (loopback TCP, "
    "the receiver's side included) is nearly all of its cost. The raw send() floor row, a "
    "bare write loop with no per-connection work at all, shows what one write per delivery "
    "costs; the hub's direct path (hub/transport.py write_direct) touches only the client "
    "record and the socket per delivery. One server after another, minutes apart, the "
    "peer's own CPU per delivery moves by a third with the load on a shared machine (compare "
    "the floor's ratio in the detail): `make bench-paired` runs every server at once in "
    "alternating rounds and reads this target from per-round ratios (its section below).",
    "handshakes_vs_websockets": "the server is CPU-bound on its core in W1, so the rate follows "
    "the server CPU per handshake (see the detail). The session cache and the verified-token "
    "memo keep the database and the JWT decode off the common path (the checks that miss "
    "share one pool job per IOLoop iteration and a prebuilt statement), and the upgrade lane "
    "(handlers/upgrade.py) skips Tornado's HTTP/1.1 connection, router and request task; "
    "what is left is spread thin: the head read and parse, the request and handler objects "
    "(Tornado's RequestHandler builds headers and a UI namespace for every request), "
    "authentication, the 101, the access-log line (~20 us), the welcome and registering in "
    "the hub (pings and token expiry now share one timer, handlers/heartbeat.py). The peer "
    "authenticates nobody; no single step left is large enough to close the gap on its own. "
    "One server after another, minutes apart, this ratio moves with the load on a shared "
    "machine: `make bench-paired` measures it side by side (its section below).",
    "w2_p99": "one broadcast to 10k clients takes ~100 ms of send() calls, and the load "
    "generator shares one core with the orchestrator, so its receive loop adds queueing.",
    "w4_p99": "W4 pushes 300 broadcasts of 650-byte messages back to back, 7x W2's volume; "
    "the load generator's single core and the kernel's loopback work are the bottleneck, not "
    "the slow clients (their backlog stays in the kernel, see the memory row).",
    "w4_memory": "memory grows with the slow clients' queues until the 256-message / "
    "1 MiB limits close them.",
    "rooms_p99": "see the R1 server and client core columns: with both cores shared with other "
    "work the receive loops queue; compare with the peers' p99 in the same run.",
    "rooms_cpu_vs_socketio_node": "the ~50 sends per publish are most of both servers' cost "
    "(perf: about half of this server's R1 CPU is the kernel's loopback TCP work); on top "
    "this server parses, checks, stores (write-behind, a batch every 250 ms on the thread "
    "pool) and answers each publish, which the peer does not. Development runs on this box "
    "gave 0.79-0.86 with the 250 ms batches and 1.1-1.4 with the earlier 50 ms ones.",
    "rooms_cpu_vs_socketio": "see the Node socket.io row: the same per-publish work (inbound "
    "parsing, reply, SQLite batch) that the peer does not do.",
    "rooms_isolation": "each publish costs a few hundred microseconds on the IOLoop, with "
    "run-to-run noise of that order on a core shared with other work; no per-publish step "
    "looks at other rooms (the hub indexes subscribers by channel).",
    "w5_p99": "the whole server is pinned to one core, so the hashing threads share it with "
    "the IOLoop. They run in their own pool (--hash-workers, default 2) at nice 10, so the "
    "scheduler favours the loop, but each argon2id hash (19 MiB, 2 passes) still takes CPU "
    "time and memory bandwidth from the same core.",
    "storm_all_recovered": "the restarted server is CPU-bound on the resumes themselves: "
    "about 0.9 ms of its CPU per resume (the handshake's JWT check and session lookup in the "
    "database, the welcome, the replay, the live events meanwhile; W1's plain handshakes cost "
    "about 0.7 ms) makes 10k resumes 7-9 s of one core, after a clean shutdown of about 3 s "
    "(close frames to 10k sockets, SHUTDOWN_GRACE_SECONDS) and 0.5 s of start-up, on a core "
    "shared with other work. With Tornado's default listen backlog (128) the kernel also "
    "dropped ~70k SYNs (TcpExtListenOverflows) and the storm took 29-34 s; main.py now listens "
    "with a backlog of 4096, and the counter stays still.",
}


def _target(tid: str, name: str, value: float | None, limit: float, op: str,
            detail: str = "") -> dict[str, Any]:
    """Returns one target check: the value against its limit and whether it is met."""
    if value is None:
        return {"id": tid, "name": name, "value": None, "limit": limit, "op": op,
                "ratio": None, "met": None, "detail": detail or "not measured"}
    met = {"<=": value <= limit, "<": value < limit, ">=": value >= limit}[op]
    return {"id": tid, "name": name, "value": value, "limit": limit, "op": op,
            "ratio": value / limit if limit else None, "met": met, "detail": detail}


def compute_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks the issue's targets against one run; each value is a ratio or a measurement."""
    servers = results.get("servers", {})
    prod = servers.get("product", {})
    ws = servers.get("websockets", {})
    w = "workloads"
    cpu = number(throughput(prod).get("cpu_us_per_msg"))
    ws_cpu = number(throughput(ws).get("cpu_us_per_msg"))
    floor_cpu = number(throughput(servers.get("floor", {})).get("cpu_us_per_msg"))
    rate = number(throughput(prod).get("msgs_per_s"))
    ws_rate = number(throughput(ws).get("msgs_per_s"))
    rss = number(field(prod, w, "W1", "rss_kib_per_conn"))
    w3 = number(field(prod, w, "W3", "ratio"))
    p99 = number(field(prod, w, "W2", "latency", "p99_ms"))
    w4p99 = number(field(prod, w, "W4", "latency", "p99_ms"))
    w5p99 = number(field(prod, w, "W5", "latency", "p99_ms"))
    growth = number(field(prod, w, "W4", "rss_growth_kib"))
    burst = number(field(prod, w, "burst", "cpu_us_per_msg"))
    ws_burst = number(field(ws, w, "burst", "cpu_us_per_msg"))
    hs = number(field(prod, w, "W1", "handshakes_per_s"))
    ws_hs = number(field(ws, w, "W1", "handshakes_per_s"))
    paused = number(field(prod, w, "W4", "paused"))
    targets = [
        _target("cpu_vs_websockets", "W2 CPU per delivered message vs websockets peer",
                cpu / ws_cpu if cpu and ws_cpu else None, 1.0, "<=",
                f"{fmt(cpu, 2)} us vs {fmt(ws_cpu, 2)} us"),
        _target("cpu_abs", "W2 CPU per delivered message (us)", cpu, 10.0, "<"),
        _target("cpu_vs_websockets_07", "W2 CPU per delivered message vs websockets peer, "
                "issue 14", cpu / ws_cpu if cpu and ws_cpu else None, 0.7, "<=",
                f"{fmt(cpu, 2)} us vs {fmt(ws_cpu, 2)} us" + (
                    f"; raw send() floor {fmt(floor_cpu, 2)} us ({fmt(floor_cpu / ws_cpu, 2)}x "
                    f"the peer; this server {fmt(cpu / floor_cpu, 2)}x the floor)"
                    if cpu and ws_cpu and floor_cpu else "")),
        _target("burst_cpu", "Burst (20 alerts in one iteration) CPU per delivered event (us)",
                burst, 5.0, "<", f"websockets peer {fmt(ws_burst, 2)} us"),
        _target("handshakes_vs_websockets", "W1 authenticated handshakes/s vs websockets "
                "peer's plain ones", hs / ws_hs if hs and ws_hs else None, 1.0, ">=",
                f"{fmt(hs)} vs {fmt(ws_hs)} per second; server CPU "
                f"{fmt(field(prod, w, 'W1', 'cpu_us_per_handshake'), 0)} vs "
                f"{fmt(field(ws, w, 'W1', 'cpu_us_per_handshake'), 0)} us each"),
        _target("rate_vs_websockets", "W2 delivered msgs/s vs websockets peer",
                rate / ws_rate if rate and ws_rate else None, 1.0, ">=",
                f"{fmt(rate)} vs {fmt(ws_rate)} msgs/s"),
        _target("rss_per_conn", "W1 RSS per idle authenticated connection (KiB)", rss, 16.0,
                "<="),
        _target("w3_ratio", "W3 per-send IOLoop CPU, 10k vs 10 bystanders", w3, 1.2, "<=",
                f"{fmt(field(prod, w, 'W3', 'few', 'loop_cpu_us_per_send'), 0)} us -> "
                f"{fmt(field(prod, w, 'W3', 'many', 'loop_cpu_us_per_send'), 0)} us per send "
                f"on the IOLoop; whole process {fmt(field(prod, w, 'W3', 'ratio_process'), 2)}x "
                f"({fmt(field(prod, w, 'W3', 'few', 'cpu_us_per_send'), 0)} -> "
                f"{fmt(field(prod, w, 'W3', 'many', 'cpu_us_per_send'), 0)} us, SQLite commits "
                "on the thread pool included)"),
        _target("w2_p99", "W2 p99 fan-out latency (ms)", p99, 200.0, "<"),
        _target("w4_p99", "W4 healthy p99 vs W2 p99", w4p99 / p99 if w4p99 and p99 else None,
                1.5, "<=", f"{fmt(w4p99)} ms vs {fmt(p99)} ms"),
        _target("w4_memory", "W4 RSS growth per slow client (KiB; cap 1 MiB unsent)",
                growth / paused if growth is not None and paused else None, 1024.0, "<=",
                f"+{fmt((growth or 0) / 1024)} MiB for {fmt(paused, 0)} slow clients, "
                f"{fmt(field(prod, w, 'W4', 'dropped_by_server'), 0)} dropped with 1013"),
        _target("w5_p99", "W5 p99 during login storm vs W2 p99",
                w5p99 / p99 if w5p99 and p99 else None, 2.0, "<=",
                f"{fmt(w5p99)} ms vs {fmt(p99)} ms"),
    ]
    targets += room_targets(results)
    targets += storm_targets(results)
    targets += cluster_targets(results)
    for t in targets:
        if t["met"] is False and t["id"] in CAUSES:
            t["cause"] = CAUSES[t["id"]]
    return targets


def room_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The rooms workload's targets: CPU per delivery vs both Socket.IO peers, p99, isolation."""
    rooms = results.get("rooms")
    if not rooms:
        return []
    w = "workloads"
    cpu = number(field(rooms, "product", w, "R1", "cpu_us_per_msg"))
    out = []
    for peer, label in (("socketio", "python-socketio"), ("socketio-node", "Node socket.io")):
        other = number(field(rooms, peer, w, "R1", "cpu_us_per_msg"))
        out.append(_target(f"rooms_cpu_vs_{peer.replace('-', '_')}",
                           f"R1 CPU per room delivery vs {label}",
                           cpu / other if cpu and other else None, 1.0, "<=",
                           f"{fmt(cpu, 2)} us vs {fmt(other, 2)} us"))
    out.append(_target("rooms_p99", "R1 p99 publish-to-delivery latency (ms)",
                       number(field(rooms, "product", w, "R1", "latency", "p99_ms")), 200.0, "<"))
    r2 = field(rooms, "product", w, "R2") or {}
    out.append(_target(
        "rooms_isolation", "R2 per-publish IOLoop CPU, 10k vs 10 sockets in other rooms",
        number(r2.get("ratio")), 1.2, "<=",
        f"{fmt(field(r2, 'few', 'loop_cpu_us_per_publish'), 0)} us -> "
        f"{fmt(field(r2, 'many', 'loop_cpu_us_per_publish'), 0)} us per publish on the IOLoop "
        f"({fmt(r2.get('bystanders_few'), 0)} -> {fmt(r2.get('bystanders_many'), 0)} sockets); "
        f"whole process {fmt(r2.get('ratio_process'), 2)}x"))
    return out


def storm_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The reconnect storm's targets: every client recovered within 10 s, no gap, no dupe."""
    s = results.get("storm")
    if not s or s.get("error"):
        return []
    clients = number(s.get("clients")) or 0
    recovered = number(s.get("recovered_clients")) or 0
    t = _target("storm_all_recovered", "S1 time from the cut until every client recovered (s)",
                number(s.get("recovery_max_s")), 10.0, "<=",
                f"{fmt(recovered, 0)} of {fmt(clients, 0)} clients recovered; p50 "
                f"{fmt(s.get('recovery_p50_s'), 2)} s, p99 {fmt(s.get('recovery_p99_s'), 2)} s")
    if not clients or recovered < clients:
        t["met"] = False
    return [
        t,
        _target("storm_gaps", "S1 gaps (acknowledged events a client never got)",
                number(s.get("gaps")), 0.0, "<=",
                f"{fmt(s.get('clients_with_gaps'), 0)} clients with a gap"),
        _target("storm_duplicates", "S1 duplicates and out-of-order events",
                (number(s.get("duplicates")) or 0) + (number(s.get("out_of_order")) or 0)
                if s.get("duplicates") is not None else None, 0.0, "<=",
                f"{fmt(s.get('duplicates'), 0)} duplicates, {fmt(s.get('out_of_order'), 0)} "
                "out of order"),
    ]


def cluster_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The cluster's targets: the Redis broker's CPU per delivery within 1.3x the memory
    broker's (C1), and a killed node's clients all recovered with no gap or duplicate (C3)."""
    c = results.get("cluster") or {}
    out = []
    c1 = c.get("broker_cost") or {}
    if c1 and not c1.get("error"):
        out.append(_target("cluster_broker_ratio", "C1 CPU per delivery, Redis vs memory broker",
                           number(c1.get("ratio")), 1.3, "<=",
                           f"{fmt(c1.get('cpu_us_per_msg_redis'), 2)} us vs "
                           f"{fmt(c1.get('cpu_us_per_msg_memory'), 2)} us"))
    c3 = c.get("kill_node") or {}
    if c3 and not c3.get("error"):
        faults = sum(number(c3.get(k)) or 0 for k in ("gaps", "duplicates", "out_of_order",
                                                     "not_recovered"))
        t = _target("cluster_kill_exact", "C3 gaps, duplicates and unrecovered clients after "
                    "a node is killed", faults, 0.0, "<=",
                    f"{fmt(c3.get('recovered_clients'), 0)} of {fmt(c3.get('clients_cut'), 0)} "
                    f"cut clients recovered, all within {fmt(c3.get('all_recovered_s'), 2)} s")
        if not c3.get("all_recovered"):
            t["met"] = False
        out.append(t)
    return out
