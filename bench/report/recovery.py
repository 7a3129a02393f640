"""The sections of the recovery workloads: the reconnect storm (S1) and the cluster (C1-C3)."""

from __future__ import annotations

from typing import Any

from bench.report.format import fmt, md_table, run_line, targets_table
from bench.report.targets import cluster_targets, storm_targets

__all__ = ["storm_section", "cluster_section"]


def _failed(name: str, part: dict[str, Any]) -> list[str]:
    """Returns a line saying a part failed, or nothing."""
    return [f"{name} failed: {part['error']}", ""] if part.get("error") else []


def storm_section(results: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns the reconnect storm's section of one run."""
    s, cfg = results["storm"], results.get("config", {})
    out = ["## Reconnect storm (S1)", "", *run_line(results, json_name, (
        f"{fmt(cfg.get('storm_clients'), 0)} clients, {fmt(cfg.get('storm_rate'), 0)} "
        "events/s")), *_failed("S1", s)]
    if s.get("error"):
        return "\n".join(out).rstrip()
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
    return "\n".join(out + [
        md_table(["clients", "events acked", "stop + start s", "recovered / not", "p50 s",
                  "p99 s", "max s", "handshakes/s (peak)", "replayed", "replayed/s",
                  "CPU us/resume", "CPU us/replayed", "net us/replayed", "gaps", "duplicates",
                  "out of order"], [row]), "", targets_table(storm_targets(results)), "",
        f"Reconnect attempts {fmt(s.get('attempts'), 0)} (refused ones included) for "
        f"{fmt(s.get('resumed_clients'), 0)} resumes; {fmt(s.get('publish_failed'), 0)} "
        f"publishes refused during the restart; {fmt(s.get('received'), 0)} numbered events "
        f"received in all; welcome `missed` summed {fmt(s.get('missed'), 0)}."])


def _c1(c1: dict[str, Any]) -> list[str]:
    """The C1 table: the memory and Redis brokers' CPU per delivery, round by round."""
    rows = [[str(i + 1), ", ".join(r["order"]), fmt(r["memory"]["cpu_us_per_msg"], 2),
             fmt(r["redis"]["cpu_us_per_msg"], 2), fmt(r["ratio"], 3),
             fmt(r["memory"]["msgs_per_s"], 0), fmt(r["redis"]["msgs_per_s"], 0),
             fmt(r["memory"]["p99_ms"], 1), fmt(r["redis"]["p99_ms"], 1)]
            for i, r in enumerate(c1["rounds"])]
    return ["C1: one node, W2, memory broker vs Redis broker", "", md_table(
        ["round", "order", "memory us/msg", "redis us/msg", "redis/memory", "msgs/s memory",
         "msgs/s redis", "p99 ms memory", "p99 ms redis"], rows), "",
        f"Median: memory {fmt(c1['cpu_us_per_msg_memory'], 2)} us/msg, redis "
        f"{fmt(c1['cpu_us_per_msg_redis'], 2)} us/msg: **ratio {fmt(c1['ratio'], 3)}** "
        "(target <= 1.3).", ""]


def _c2(c2: dict[str, Any]) -> list[str]:
    """The C2 table: two nodes, alerts published on node A."""
    lat = [f"{fmt(c2[k]['p50_ms'], 1)} / {fmt(c2[k]['p99_ms'], 1)}" for k in ("local", "cross")]
    return ["C2: two nodes, alerts published on node A", "", md_table(
        ["clients A + B", "alerts", "delivered / expected", "msgs/s", "p50 / p99 ms local (A)",
         "p50 / p99 ms cross-node (B)", "CPU us/msg A", "CPU us/msg B",
         "Redis CPU us/alert (net)"],
        [[" + ".join(fmt(x, 0) for x in c2["recipients"]), fmt(c2["broadcasts"], 0),
          f"{fmt(sum(c2['delivered']), 0)} / {fmt(sum(c2['expected']), 0)}",
          fmt(c2["msgs_per_s"], 0), *lat, fmt(c2["cpu_us_per_msg"][0], 2),
          fmt(c2["cpu_us_per_msg"][1], 2), fmt(c2["redis_cpu_us_per_broadcast"], 0)]]), ""]


def _c3(c3: dict[str, Any]) -> list[str]:
    """The C3 table: node A killed, its clients recovered through nginx on node B."""
    out = ["C3: node A SIGKILLed, its clients recover through nginx on node B", "", md_table(
        ["clients", "cut by the kill", "recovered / not", "p50 s", "p99 s", "all recovered s",
         "replayed", "alerts acked", "gaps", "duplicates", "out of order"],
        [[fmt(c3["clients"], 0), fmt(c3["clients_cut"], 0),
          f"{fmt(c3['recovered_clients'], 0)} / {fmt(c3['not_recovered'], 0)}",
          fmt(c3["recovery_p50_s"], 2), fmt(c3["recovery_p99_s"], 2),
          fmt(c3["all_recovered_s"], 2), fmt(c3["replayed"], 0), fmt(c3["published"], 0),
          fmt(c3["gaps"], 0), fmt(c3["duplicates"], 0), fmt(c3["out_of_order"], 0)]]), ""]
    if c3.get("never_connected"):
        out += [f"{fmt(c3['never_connected'], 0)} of the {fmt(c3.get('clients_planned'), 0)} "
                f"clients failed their first connection ({c3.get('connect_errors')}) and are "
                "not counted.", ""]
    return out


def cluster_section(results: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns the cluster section (C1-C3) of one run."""
    c = results["cluster"]
    out = ["## Cluster (C1-C3)", "", *run_line(results, json_name)]
    for name, key, table in (("C1", "broker_cost", _c1), ("C2", "two_nodes", _c2),
                             ("C3", "kill_node", _c3)):
        part = c.get(key) or {}
        out += _failed(name, part) or (table(part) if part else [])
    return "\n".join(out + [targets_table(cluster_targets(results))]).rstrip()
