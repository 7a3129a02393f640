"""The cluster part of docs/benchmarks.md (C1-C3): a block that other runs keep.

A `--cluster-only` run writes just this block into the existing page; a regeneration from a
run without the cluster workloads keeps the page's block (report.write_docs).
"""

from __future__ import annotations

from typing import Any

from bench.schema import field, fmt
from bench.storm_report import replace_block
from bench.tables import md_table

__all__ = ["CLUSTER_START", "CLUSTER_END", "cluster_summary", "render_cluster_block",
           "write_cluster_block"]

CLUSTER_START = "<!-- cluster: written by bench/run.py (C1-C3) -->"
CLUSTER_END = "<!-- /cluster -->"

METHOD = """\
**How C1-C3 run** (`bench/cluster.py`). Nodes are pinned to core 0; load generators, Redis (a
private `redis-server` without persistence, so its CPU is measurable) and nginx to core 1.
**C1**: one node with {connections} connections (SQLite), W2 (alerts one at a time through
`POST /ws/broadcast`), started once with `--broker=memory` and once with `--broker=redis` per
round in ABBA order, {phases} W2 phases per start; a cell is the median of the phases' server
CPU per delivered message. The Redis broker sequences each publish in Redis and receives it
back from its channel before fanning out, so the ratio is the broker's cost on the node.
**C2**: two nodes on one PostgreSQL database and one Redis, {clients} clients on each (real
JWTs, source addresses 127.0.0.2+); {broadcasts} alerts published on node A one after the
other. Latency is from the publish timestamp to arrival; "local" are node A's clients,
"cross-node" node B's (through Redis). CPU per message is each node's own CPU over the
messages its clients received; Redis's CPU is from its `INFO cpu`, less its idle rate measured
just before. **C3**: nginx (`least_conn`) in front of both nodes; {kill}
storm clients connect through it and receive numbered alerts ({rate:.0f}/s, published
through nginx); node A is SIGKILLed; its clients reconnect through nginx (full-jitter backoff
0.2 s doubling to 2 s) with `since`/`epoch` and land on node B. A client is recovered when
its welcome says `recovered: true` and the `missed` events have arrived; times are from the
kill. Every client's numbers are then checked against the acknowledged publishes (a gap: an
acknowledged number never received; a duplicate: one received twice)."""

SCALING = """\
**What a 2-core machine can and cannot show.** Both nodes share core 0, and Redis, nginx and
every load generator share core 1, so C2's msgs/s is what one core does for two nodes plus the
broker's round trip: it cannot grow with the node count here, and it says nothing about the
throughput of N nodes on N machines. Absolute latencies are those of a saturated core (a
publish is acknowledged once Redis has numbered it, so alerts queue behind the fan-out of
earlier ones), and on a machine shared with other runs they vary a lot from run to run. What
it does show: the cost per delivery on each node (every node, the publishing one included,
takes each alert from the Redis channel and fans it out to its own clients, so the fan-out
stays a per-node cost and a node adds capacity for its own clients); that a cross-node
recipient waits no longer than a local one, for the same reason; that Redis's work is per
alert (one script call, one channel message to each node), not per recipient; and that a
killed node's clients are all recovered exactly, within seconds. Real scaling figures need
each node, Redis and the load generators on separate machines, or at least separate cores."""


def cluster_summary(results: dict[str, Any]) -> str:
    """Returns the C1-C3 tables as text (markdown), or a line saying they did not run."""
    c = results.get("cluster") or {}
    if not c:
        return "Cluster (C1-C3): not run."
    out = []
    c1 = c.get("broker_cost") or {}
    if c1.get("error"):
        out.append(f"C1 failed: {c1['error']}")
    elif c1:
        rows = [[str(i + 1), ", ".join(r["order"]), fmt(r["memory"]["cpu_us_per_msg"], 2),
                 fmt(r["redis"]["cpu_us_per_msg"], 2), fmt(r["ratio"], 3),
                 fmt(r["memory"]["msgs_per_s"], 0), fmt(r["redis"]["msgs_per_s"], 0),
                 fmt(r["memory"]["p99_ms"], 1), fmt(r["redis"]["p99_ms"], 1)]
                for i, r in enumerate(c1["rounds"])]
        out += ["C1: one node, W2, memory broker vs Redis broker", "",
                md_table(["round", "order", "memory us/msg", "redis us/msg", "redis/memory",
                          "msgs/s memory", "msgs/s redis", "p99 ms memory", "p99 ms redis"],
                         rows), "",
                f"Median: memory {fmt(c1['cpu_us_per_msg_memory'], 2)} us/msg, redis "
                f"{fmt(c1['cpu_us_per_msg_redis'], 2)} us/msg: **ratio "
                f"{fmt(c1['ratio'], 3)}** (target <= 1.3).", ""]
    c2 = c.get("two_nodes") or {}
    if c2.get("error"):
        out.append(f"C2 failed: {c2['error']}")
    elif c2:
        cpu = c2["cpu_us_per_msg"]
        out += ["C2: two nodes, alerts published on node A", "",
                md_table(["clients A + B", "alerts", "delivered / expected", "msgs/s",
                          "p50 / p99 ms local (A)", "p50 / p99 ms cross-node (B)",
                          "CPU us/msg A", "CPU us/msg B", "Redis CPU us/alert (net)"],
                         [[" + ".join(fmt(x, 0) for x in c2["recipients"]),
                           fmt(c2["broadcasts"], 0),
                           f"{fmt(sum(c2['delivered']), 0)} / {fmt(sum(c2['expected']), 0)}",
                           fmt(c2["msgs_per_s"], 0),
                           f"{fmt(c2['local']['p50_ms'], 1)} / {fmt(c2['local']['p99_ms'], 1)}",
                           f"{fmt(c2['cross']['p50_ms'], 1)} / {fmt(c2['cross']['p99_ms'], 1)}",
                           fmt(cpu[0], 2), fmt(cpu[1], 2),
                           fmt(c2["redis_cpu_us_per_broadcast"], 0)]]), ""]
    c3 = c.get("kill_node") or {}
    if c3.get("error"):
        out.append(f"C3 failed: {c3['error']}")
    elif c3:
        out += ["C3: node A SIGKILLed, its clients recover through nginx on node B", "",
                md_table(["clients", "cut by the kill", "recovered / not", "p50 s", "p99 s",
                          "all recovered s", "replayed", "alerts acked", "gaps",
                          "duplicates", "out of order"],
                         [[fmt(c3["clients"], 0), fmt(c3["clients_cut"], 0),
                           f"{fmt(c3['recovered_clients'], 0)} / {fmt(c3['not_recovered'], 0)}",
                           fmt(c3["recovery_p50_s"], 2), fmt(c3["recovery_p99_s"], 2),
                           fmt(c3["all_recovered_s"], 2), fmt(c3["replayed"], 0),
                           fmt(c3["published"], 0), fmt(c3["gaps"], 0),
                           fmt(c3["duplicates"], 0), fmt(c3["out_of_order"], 0)]]), ""]
        if c3.get("never_connected"):
            out += [f"{fmt(c3['never_connected'], 0)} of the {fmt(c3.get('clients_planned'), 0)}"
                    f" clients failed their first connection ({c3.get('connect_errors')}) and "
                    "are not counted.", ""]
    return "\n".join(out).rstrip()


def render_cluster_block(results: dict[str, Any], json_path: str = "") -> str:
    """Returns the page's cluster section between its markers."""
    cfg = results.get("config", {})
    load = field(results, "machine", "loadavg")
    return "\n".join([
        CLUSTER_START, "## Cluster (C1-C3)", "",
        f"Run {results.get('started', '?')} ({results.get('mode', '?')} mode)"
        + (f", load average at start {load}" if load else "")
        + (f"; raw results in `{json_path}` (not committed)." if json_path else "."), "",
        *([f"**Conditions.** {results['note']}", ""] if results.get("note") else []),
        cluster_summary(results), "",
        METHOD.format(connections=cfg.get("connections", "?"),
                      phases=cfg.get("cluster_broker_phases", "?"),
                      clients=cfg.get("cluster_clients", "?"),
                      broadcasts=cfg.get("cluster_broadcasts", "?"),
                      kill=cfg.get("cluster_kill_clients", "?"),
                      rate=float(cfg.get("cluster_kill_rate", 0))), "",
        SCALING, "",
        "`.venv/bin/python -m bench.run --cluster-only [--quick]` runs only C1-C3 and rewrites "
        "only this section; `--no-cluster` skips them.", CLUSTER_END])


def write_cluster_block(results: dict[str, Any], md_path: str, json_path: str = "") -> str:
    """Writes only the cluster section into the page at md_path; returns its path."""
    with open(md_path, encoding="utf-8") as fh:
        page = fh.read()
    block = render_cluster_block(results, json_path)
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(replace_block(page, block, CLUSTER_START, CLUSTER_END))
    return md_path
