"""The sections of the side-by-side comparisons: wire formats, metrics overhead, paired
rounds."""

from __future__ import annotations

from typing import Any

from bench.report.format import fmt, label, md_table, run_line, targets_table
from bench.report.targets import overhead_targets, paired_targets, wire_targets

__all__ = ["wire_section", "overhead_section", "paired_section"]

VARIANTS = ("json", "json+deflate", "protobuf", "protobuf+deflate")
PAYLOADS = {"w2": "W2 alert", "1k": "+1 KiB text"}


def wire_section(report: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns the wire formats' section: every variant's cell beside the websockets peer's."""
    servers = report["servers"]
    cells = {name: s for name, s in servers.items() if "error" not in s}
    rows = []
    for size in report["payload_bytes"]:
        for variant in VARIANTS:
            pair = [cells.get(n, {}).get(variant, {}).get(size) for n in ("product", "websockets")]
            p, w = pair
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
    micro = [[PAYLOADS.get(size, size), *(fmt(row[v], 1) for v in VARIANTS)]
             for size, row in (report.get("micro") or {}).items()]
    conns = next((s["connections"] for s in cells.values()), 0)
    return "\n".join([
        "## Wire formats: JSON vs protobuf, permessage-deflate on vs off", "",
        *run_line(report, json_name, f"{conns:,} connections per variant, "
                  f"{report['broadcasts']} broadcasts per phase, {report['phases']} phases x "
                  f"{report['rounds']} rounds"),
        md_table(["payload", "variant", "this server us/msg", "websockets us/msg", "ratio",
                  "this server bytes/event", "websockets bytes/event", "msgs/s",
                  "websockets msgs/s", "p99 ms", "websockets p99 ms"], rows), "", *ratios, "",
        targets_table(wire_targets(report)), "",
        "Once per publish and variant, in-process (`hub.events.Encoded.frame_for`, the event "
        "serialised and framed from scratch, best of 3), in us:", "",
        md_table(["payload", "JSON", "JSON + deflate", "protobuf", "protobuf + deflate"],
                 micro)])


def overhead_section(report: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns the metrics-overhead section: W2 with --metrics on and off, round by round."""
    rows = [[str(i + 1), ", ".join(r["order"]), *(fmt(r[s]["cpu_us_per_msg"], 2) for s in (
        "on", "off")), fmt(r["ratio"], 3), *(fmt(r[s]["msgs_per_s"], 0) for s in ("on", "off")),
        *(fmt(r[s]["p99_ms"], 1) for s in ("on", "off"))] for i, r in enumerate(report["rounds"])]
    ratios = [r["ratio"] for r in report["rounds"]]
    out = ["## Metrics overhead (W2, `--metrics` on vs off)", "",
           *run_line(report, json_name, f"{report['connections']:,} connections, "
                     f"{len(report['rounds'][0]['on']['phases'])} W2 phases per start"),
           md_table(["round", "order", "metrics on us/msg", "metrics off us/msg", "on/off",
                     "msgs/s on", "msgs/s off", "p99 ms on", "p99 ms off"], rows), "",
           targets_table(overhead_targets(report))]
    if max(ratios) - min(ratios) > 0.03:
        out += ["", f"Round ratios range from {min(ratios):.3f} to {max(ratios):.3f}: wider than "
                "the 3% being tested, so the median is indicative only; the hook's own cost "
                "(below) is the tighter bound."]
    hook, off = report.get("micro"), report["cpu_us_per_msg_off"]
    if hook:
        per = hook["hook_us_per_publish"] / hook["connections"]
        out += ["", f"In-process, with no-op sockets ({hook['connections']:,} recipients, "
                f"{hook['rounds']} interleaved rounds of {hook['publishes']} publishes), "
                f"`Hub.publish` costs {hook['us_per_delivery_on']:.4f} us per delivery with the "
                f"metrics hook and {hook['us_per_delivery_off']:.4f} us without (on/off "
                f"{hook['ratio']:.3f}, an upper bound). The hook itself costs "
                f"{hook['hook_us_per_publish']:.2f} us per publish, never per recipient: "
                f"{per:.5f} us per delivery at {hook['connections']:,} recipients, "
                f"{per / off:.3%} of the {off:.2f} us a delivery costs without metrics."]
    return "\n".join(out)


def paired_section(report: dict[str, Any], json_name: str, images: Any = None) -> str:
    """Returns the paired rounds' section: medians, ratios to the peer, and every round."""
    names, peer = report["servers"], report["peer"]
    h, b = report["handshake"], report["broadcast"]
    rows = [[label(n), fmt(h["median_cpu_us"].get(n), 0),
             "1.00" if n == peer else fmt(h["ratio_to_peer"].get(n), 2),
             fmt(b["median_cpu_us"].get(n), 2),
             "1.00" if n == peer else fmt(b["ratio_to_peer"].get(n), 2)] for n in names]
    rounds = [md_table([f"{key} round", *(label(n) for n in names)], [
        [str(i + 1), *(fmt(r[n]["cpu_us"], digits) for n in names)]
        for i, r in enumerate(report[part]["rounds"])])
        for key, part, digits in (("H", "handshake", 0), ("B", "broadcast", 2))]
    return "\n".join([
        "## Paired rounds: CPU per handshake and per delivery, every server up at once", "",
        *run_line(report, json_name, f"{report['rounds']} rounds, {report['handshakes']} "
                  f"handshakes a round, {report['broadcasts']} alerts a round to "
                  f"{report['connections']:,} connections"),
        md_table(["server", "H: CPU us per handshake (median)", "H: vs websockets",
                  "B: CPU us per delivery (median)", "B: vs websockets"], rows), "",
        targets_table(paired_targets(report)), "", "Every round (us):", "", rounds[0], "",
        rounds[1]])
