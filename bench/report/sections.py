"""The sections of S1, C1-C4 and the side-by-side comparisons (wire, metrics, paired, hooks)."""

from __future__ import annotations

from typing import Any

from bench.report import targets
from bench.report.format import fmt, label, md_table, run_line, targets_table

__all__ = ["storm_section", "cluster_section", "workers_section", "wire_section",
           "overhead_section", "paired_section", "hooks_section"]

VARIANTS = ("json", "json+deflate", "protobuf", "protobuf+deflate", "sse")
PAYLOADS = {"w2": "W2 alert", "1k": "+1 KiB text"}


def _abba(rounds: list[dict[str, Any]], a: str, b: str, names: tuple[str, str], ratio: str) -> str:
    """Returns the table of ABBA rounds of settings a and b (C1, metrics overhead)."""
    rows = [[str(i + 1), ", ".join(r["order"]), fmt(r[a]["cpu_us_per_msg"], 2),
             fmt(r[b]["cpu_us_per_msg"], 2), fmt(r["ratio"], 3),
             *(fmt(r[s]["msgs_per_s"], 0) for s in (a, b)),
             *(fmt(r[s]["p99_ms"], 1) for s in (a, b))] for i, r in enumerate(rounds)]
    return md_table(["round", "order", f"{names[0]} us/msg", f"{names[1]} us/msg", ratio,
                     f"msgs/s {a}", f"msgs/s {b}", f"p99 ms {a}", f"p99 ms {b}"], rows)


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
           *(fmt(s.get(k), 2) for k in ("recovery_p50_s", "recovery_p99_s", "recovery_max_s")),
           f"{fmt(s.get('handshakes_per_s'), 0)} ({fmt(s.get('handshakes_per_s_peak'), 0)})",
           *(fmt(s.get(k), 0) for k in ("replayed", "replayed_per_s", "cpu_us_per_resume")),
           *(fmt(s.get(k), 1) for k in ("cpu_us_per_replayed", "cpu_us_per_replayed_net")),
           *(fmt(s.get(k), 0) for k in ("gaps", "duplicates", "out_of_order"))]
    return "\n".join(out + [
        md_table(["clients", "events acked", "stop + start s", "recovered / not", "p50 s",
                  "p99 s", "max s", "handshakes/s (peak)", "replayed", "replayed/s",
                  "CPU us/resume", "CPU us/replayed", "net us/replayed", "gaps", "duplicates",
                  "out of order"], [row]), "", targets_table(targets.storm_targets(results)), "",
        f"Reconnect attempts {fmt(s.get('attempts'), 0)} (refused ones included) for "
        f"{fmt(s.get('resumed_clients'), 0)} resumes; {fmt(s.get('publish_failed'), 0)} "
        f"publishes refused during the restart; {fmt(s.get('received'), 0)} numbered events "
        f"received in all; welcome `missed` summed {fmt(s.get('missed'), 0)}."])


def _c2(c2: dict[str, Any]) -> list[str]:
    """The C2 table: two nodes, alerts published on node A."""
    lat = [f"{fmt(c2[k]['p50_ms'], 1)} / {fmt(c2[k]['p99_ms'], 1)}" for k in ("local", "cross")]
    return ["C2: two nodes, alerts published on node A", "", md_table(
        ["clients A + B", "alerts", "delivered / expected", "msgs/s", "p50 / p99 ms local (A)",
         "p50 / p99 ms cross-node (B)", "CPU us/msg A", "CPU us/msg B", "Redis CPU us/alert (net)"],
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
          *(fmt(c3[k], 2) for k in ("recovery_p50_s", "recovery_p99_s", "all_recovered_s")),
          *(fmt(c3[k], 0) for k in ("replayed", "published", "gaps", "duplicates",
                                    "out_of_order"))]]), ""]
    if c3.get("never_connected"):
        out += [f"{fmt(c3['never_connected'], 0)} of the {fmt(c3.get('clients_planned'), 0)} "
                f"clients failed their first connection ({c3.get('connect_errors')}) and are "
                "not counted.", ""]
    return out


def cluster_section(results: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns the cluster section (C1-C3) of one run."""
    c = results["cluster"]
    out = ["## Cluster (C1-C3)", "", *run_line(results, json_name)]
    for name, key, table in (("C1", "broker_cost", lambda c1: [
            "C1: one node, W2, memory broker vs Redis broker", "", _abba(
                c1["rounds"], "memory", "redis", ("memory", "redis"), "redis/memory"), ""]),
            ("C2", "two_nodes", _c2), ("C3", "kill_node", _c3)):
        part = c.get(key) or {}
        out += _failed(name, part) or (table(part) if part else [])
    return "\n".join(out + [targets_table(targets.cluster_targets(results))]).rstrip()


def workers_section(results: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns C4's section: `--workers 1` and `--workers 2` (medians of the rounds), 2 vs 1."""
    w = results["workers"]
    out = ["## Every core: `--workers 2` vs `--workers 1` (C4)", "", *run_line(
        results, json_name, f"{fmt(w.get('clients'), 0)} clients a start, medians of "
        f"{len(w.get('rounds', []))} round(s); the server on every core, the load generators on "
        "core 1; server CPU is the supervisor's and every worker's"), *_failed("C4", w)]
    if w.get("error"):
        return "\n".join(out).rstrip()
    keys = {"handshakes_per_s": 0, "cpu_us_per_handshake": 0, "msgs_per_s": 0, "cpu_us_per_msg": 2}
    rows = [[n, *(fmt(w[f"{k}_{n}"], d) for k, d in keys.items())] for n in "12"]
    rows.append(["2 vs 1", *(fmt(w[f"{k}_1"] and w[f"{k}_2"] and w[f"{k}_2"] / w[f"{k}_1"], 2)
                             for k in keys)])
    return "\n".join(out + [md_table(["workers", "handshakes/s", "CPU us/handshake",
                                      "deliveries/s", "CPU us/delivery"], rows)])


def wire_section(report: dict[str, Any], json_name: str) -> str:
    """Returns the wire formats' section: every variant's cell beside the websockets peer's."""
    servers = report["servers"]
    cells = {name: s for name, s in servers.items() if "error" not in s}
    rows = []
    for size in report["payload_bytes"]:
        for variant in VARIANTS:
            p, w = pair = [cells.get(n, {}).get(variant, {}).get(size)
                           for n in ("product", "websockets")]
            rows.append([PAYLOADS.get(size, size), variant,
                         *(fmt(c and c["cpu_us_per_msg"], 2) for c in pair),
                         fmt(p["cpu_us_per_msg"] / w["cpu_us_per_msg"] if p and w else None, 2),
                         *(fmt(c and c["bytes_per_event"], 0) for c in pair),
                         *(fmt(c and c["msgs_per_s"], 0) for c in pair),
                         *(fmt(c and c["p99_ms"], 1) for c in pair)])
    ratios = [f"- {name}: failed ({s['error']})" for name, s in servers.items() if "error" in s]
    for name, s in cells.items():
        for f in ("json", "protobuf"):
            on, off = s[f"{f}+deflate"]["1k"], s[f]["1k"]
            cpu = on["cpu_us_per_msg"] / off["cpu_us_per_msg"]
            ratios.append(f"- {name}, {f}, 1 KiB: deflate costs **{cpu:.2f}x** the CPU per "
                          f"delivery and sends {on['bytes_per_event'] / off['bytes_per_event']:.0%}"
                          " of the bytes")
        if "sse" in s:
            sse = s["sse"]["w2"]["cpu_us_per_msg"] / s["json"]["w2"]["cpu_us_per_msg"]
            ratios.append(f"- {name}: an SSE stream costs **{sse:.2f}x** the CPU per delivery "
                          "of a JSON WebSocket (W2 payload, the same run)")
    micro = [[PAYLOADS.get(size, size), *(fmt(row[v], 1) for v in VARIANTS)]
             for size, row in (report.get("micro") or {}).items()]
    conns = next((s["connections"] for s in cells.values()), 0)
    return "\n".join(["## Wire formats: JSON vs protobuf, permessage-deflate on vs off", "",
        *run_line(report, json_name, f"{conns:,} connections per variant, "
                  f"{report['broadcasts']} broadcasts per phase, {report['phases']} phases x "
                  f"{report['rounds']} rounds"),
        md_table(["payload", "variant", "this server us/msg", "websockets us/msg", "ratio",
                  "this server bytes/event", "websockets bytes/event", "msgs/s",
                  "websockets msgs/s", "p99 ms", "websockets p99 ms"], rows), "", *ratios, "",
        targets_table(targets.wire_targets(report)), "",
        "Once per publish and variant, in-process (`hub.events.Encoded.frame_for`, the event "
        "serialised and framed from scratch, best of 3), in us:", "",
        md_table(["payload", "JSON", "JSON + deflate", "protobuf", "protobuf + deflate", "SSE"],
                 micro)])


def overhead_section(report: dict[str, Any], json_name: str) -> str:
    """Returns the metrics-overhead section: W2 with --metrics on and off, round by round."""
    ratios = [r["ratio"] for r in report["rounds"]]
    out = ["## Metrics overhead (W2, `--metrics` on vs off)", "",
           *run_line(report, json_name, f"{report['connections']:,} connections, "
                     f"{len(report['rounds'][0]['on']['phases'])} W2 phases per start"),
           _abba(report["rounds"], "on", "off", ("metrics on", "metrics off"), "on/off"), "",
           targets_table(targets.overhead_targets(report))]
    if max(ratios) - min(ratios) > 0.03:
        out += ["", f"Round ratios range from {min(ratios):.3f} to {max(ratios):.3f}: wider than "
                "the 3% being tested, so the median is indicative only; the hook's own cost "
                "(below) is the tighter bound."]
    hook, off = report.get("micro"), report["cpu_us_per_msg_off"]
    if hook:
        per = hook["hook_us_per_publish"] / hook["connections"]
        out += ["", f"In-process with no-op sockets ({hook['connections']:,} recipients), "
                f"`Hub.publish` costs {hook['us_per_delivery_on']:.4f} us per delivery with the "
                f"hook and {hook['us_per_delivery_off']:.4f} us without; the hook itself costs "
                f"{hook['hook_us_per_publish']:.2f} us per publish (never per recipient): "
                f"{per:.5f} us per delivery, {per / off:.3%} of a delivery without metrics."]
    return "\n".join(out)


def paired_section(report: dict[str, Any], json_name: str) -> str:
    """Returns the paired rounds' section: medians, ratios to the peer, and every round."""
    names, peer = report["servers"], report["peer"]
    h, b, r = report["handshake"], report["broadcast"], report.get("reconnect")
    # (key, what one is, its report part, digits); R only in reports since the R rounds.
    parts = [("H", "handshake", h, 0), *([("R", "known session's reconnect", r, 0)] if r else []),
             ("B", "delivery", b, 2)]
    head, rows = ["server"], [[label(n)] for n in names]
    for key, unit, part, digits in parts:
        head += [f"{key}: CPU us per {unit} (median)", f"{key}: vs websockets"]
        for n, row in zip(names, rows, strict=True):
            row += [fmt(part["median_cpu_us"].get(n), digits),
                    "1.00" if n == peer else fmt(part["ratio_to_peer"].get(n), 2)]
    if r:
        head.append("R: known / new, same round (median)")
        for n, row in zip(names, rows, strict=True):
            row.append(fmt(r["known_vs_new"].get(n), 2))
    counted = [(key, part) for key, _, part, _ in parts if "ratio_to_peer_no_gc" in part]
    for key, part in counted:  # runs that counted full garbage collections
        head.append(f"{key}: vs websockets, full collections left out")
        for n, row in zip(names, rows, strict=True):
            row.append("1.00" if n == peer else fmt(part["ratio_to_peer_no_gc"].get(n), 2))
    rounds = [md_table([f"{key} round", *(label(n) for n in names)], [
        [str(i + 1), *(_round_cell(row[n], digits) for n in names)]
        for i, row in enumerate(part["rounds"])]) for key, _, part, digits in parts]
    collected = ["A round's cell reads `CPU (gc N)` where the server ran full garbage "
                 "collections in it, N being their CPU per unit (part of the CPU). A full "
                 "collection walks every object the server holds, so its cost grows with the "
                 "connections earlier rounds left open.", ""] if counted else []
    base = [n for n in names if n.startswith("product@")]  # --base: a before/after
    commit = report.get("base", {}).get("commit", "")[:12]
    versus = [f"This tree against {label(base[0])} ({commit}): "
              f"{fmt(h.get('ratio_to_base'), 2)}x the CPU per handshake, "
              + (f"{fmt(r.get('ratio_to_base'), 2)}x per known session's reconnect, "
                 if r else "")
              + f"{fmt(b.get('ratio_to_base'), 2)}x per delivery (medians of the per-round "
              "ratios).", ""] if base else []
    known = ["R rounds: new users connect, then the same sessions again while the first wave is "
             "open (token and session remembered, as after a network blip); the R columns are "
             "the second wave; every client is closed between R rounds.", ""] if r else []
    return "\n".join([
        "## Paired rounds: CPU per handshake and per delivery, every server up at once", "",
        *run_line(report, json_name, f"{report['rounds']} rounds, {report['handshakes']} "
                  f"handshakes a round, {report.get('tabs', 10)} tabs a user, "  # 10: older runs
                  f"{report['broadcasts']} alerts a round to "
                  f"{report['connections']:,} connections"),
        md_table(head, rows), "", *versus, *known,
        targets_table(targets.paired_targets(report)), "", "Every round (us):", "",
        *collected,
        *(x for table in rounds for x in (table, ""))]).rstrip("\n")


def _round_cell(row: dict[str, Any], digits: int) -> str:
    """One server's cell in a round's row: its CPU per unit, and the part full garbage
    collections took where it ran any."""
    cell = fmt(row.get("cpu_us"), digits)
    return f"{cell} (gc {fmt(row['gc_us'], digits)})" if row.get("full_gcs") else cell


def hooks_section(report: dict[str, Any], json_name: str) -> str:
    """Returns the publish hook's section: R1 with the hook off and on, round by round."""
    rows = [[str(i + 1), ", ".join(r["order"]), *(fmt(r[s].get(k), d) for k, d in (
        ("cpu_us_per_publish", 0), ("p99_ms", 1), ("published", 0)) for s in ("off", "on")),
        fmt(r.get("ratio"), 2)] for i, r in enumerate(report["rounds"])]
    return "\n".join(["## Permission hooks (R1 publishes, `--hooks=publish` on vs off)", "",
        *run_line(report, json_name, f"{report['rooms']} rooms x {report['members']} members; "
                  "the application answers allow from the benchmark's own process"),
        md_table(["round", "order", "CPU us/publish off", "CPU us/publish on", "p99 ms off",
                  "p99 ms on", "publishes off", "publishes on", "CPU on/off"], rows), "",
        "Medians: {} vs {} us of server CPU per publish ({}x), p99 {} vs {} ms; {} hook calls "
        "answered (R1's and R2's publishes).".format(*(fmt(report.get(k), d) for k, d in (
            ("cpu_us_per_publish_off", 0), ("cpu_us_per_publish_on", 0), ("ratio", 2),
            ("p99_ms_off", 1), ("p99_ms_on", 1), ("hook_calls", 0))))])
