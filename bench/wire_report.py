"""The wire-formats section of docs/benchmarks.md (bench/wire.py), a block other runs keep."""

from __future__ import annotations

from typing import Any

__all__ = ["render_block", "write_block", "text_table", "WIRE_START", "WIRE_END"]

WIRE_START = "<!-- wire-formats: written by bench/wire.py -->"
WIRE_END = "<!-- /wire-formats -->"
_LABELS = {"w2": "W2 alert", "1k": "+1 KiB text"}


def _cell(servers: dict[str, Any], name: str, variant: str, size: str) -> dict[str, Any] | None:
    server = servers.get(name)
    if not server or "error" in server:
        return None
    return server[variant][size]


def _rows(report: dict[str, Any]) -> list[str]:
    servers = report["servers"]
    rows = []
    for size in report["payload_bytes"]:
        for variant in ("json", "json+deflate", "protobuf", "protobuf+deflate"):
            p = _cell(servers, "product", variant, size)
            w = _cell(servers, "websockets", variant, size)
            us = [f"{c['cpu_us_per_msg']:.2f}" if c else "-" for c in (p, w)]
            ratio = (f"{p['cpu_us_per_msg'] / w['cpu_us_per_msg']:.2f}"
                     if p and w and w["cpu_us_per_msg"] else "-")
            size_b = [f"{c['bytes_per_event']:.0f}" if c else "-" for c in (p, w)]
            rate = [f"{c['msgs_per_s']:,.0f}" if c else "-" for c in (p, w)]
            p99 = [f"{c['p99_ms']:.1f}" if c else "-" for c in (p, w)]
            rows.append(f"| {_LABELS.get(size, size)} | {variant} | {us[0]} | {us[1]} | "
                        f"{ratio} | {size_b[0]} | {size_b[1]} | {rate[0]} | {rate[1]} | "
                        f"{p99[0]} | {p99[1]} |")
    return rows


def _ratios(report: dict[str, Any]) -> list[str]:
    """Returns one line per server and format: deflate on/off CPU and bytes, 1 KiB payload."""
    lines = []
    for name, server in report["servers"].items():
        if "error" in server:
            lines.append(f"- {name}: failed ({server['error']})")
            continue
        for fmt in ("json", "protobuf"):
            on, off = server[f"{fmt}+deflate"]["1k"], server[fmt]["1k"]
            cpu = on["cpu_us_per_msg"] / off["cpu_us_per_msg"]
            size = on["bytes_per_event"] / off["bytes_per_event"]
            lines.append(f"- {name}, {fmt}, 1 KiB: deflate costs **{cpu:.2f}x** the CPU per "
                         f"delivery and sends {size:.0%} of the bytes")
    return lines


def _micro(micro: dict[str, dict[str, float]] | None) -> list[str]:
    if not micro:
        return []
    rows = [f"| {_LABELS.get(size, size)} | " + " | ".join(f"{row[v]:.1f}" for v in (
        "json", "json+deflate", "protobuf", "protobuf+deflate")) + " |"
        for size, row in micro.items()]
    return ["", "Once per publish and variant, in-process (`hub.events.Encoded.frame_for`, "
            "the event serialised and framed from scratch, best of 3), in us:", "",
            "| payload | JSON | JSON + deflate | protobuf | protobuf + deflate |",
            "|---|---|---|---|---|", *rows]


def render_block(report: dict[str, Any], json_name: str) -> str:
    """Returns the markdown section for docs/benchmarks.md from one wire run."""
    load = " ".join(f"{x:.2f}" for x in report.get("loadavg_start", ()))
    conns = next((s["connections"] for s in report["servers"].values() if "connections" in s),
                 0)
    targets = [f"| {t['target']} | {t['value']:.2f} | <= {t['limit']:.2f} | "
               f"**{'met' if t['met'] else 'MISSED'}** |" for t in report.get("targets", [])]
    return "\n".join([
        WIRE_START,
        "## Wire formats: JSON vs protobuf, permessage-deflate on vs off",
        "",
        f"Run {report['started']} ({report['mode']} mode, {conns:,} connections per variant, "
        f"{report['broadcasts']} broadcasts per phase, {report['phases']} phases x "
        f"{report['rounds']} rounds, variant order reversed every other round); raw results "
        f"in `bench/results/{json_name}` (not committed). Load average at the start: {load}; "
        "the machine is shared, so compare cells of one server within this run.",
        "",
        "Payloads: W2's own alert (about 180 bytes of JSON, under this server's 256-byte "
        "deflate threshold, so its \"deflate\" rows are sent uncompressed by this server and "
        "compressed by websockets) and the same alert with 1 KiB of word-like text in its "
        "metadata. us/msg is the server's CPU per delivered message (median of phases, then "
        "of rounds); bytes/event what a client received per event (frame header and payload).",
        "",
        "| payload | variant | this server us/msg | websockets us/msg | ratio | "
        "this server bytes/event | websockets bytes/event | msgs/s | websockets msgs/s | "
        "p99 ms | websockets p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *_rows(report),
        "",
        *_ratios(report),
        "",
        "| target | value | limit | status |",
        "|---|---|---|---|",
        *targets,
        *_micro(report.get("micro")),
        "",
        "This server deflates an event once per publish (no context takeover, so the same "
        "compressed frame suits every compressing connection) and serialises it once per "
        "format in use; websockets' `broadcast()` compresses per connection (each keeps its "
        "own compression context), which costs it CPU per recipient. That context is also "
        "why its compressed bytes are so small here: consecutive bench alerts differ only in "
        "their sequence number and send time, so each compresses to a few bytes against the "
        "previous one; events that differ more gain less from it, and a message compressed "
        "alone (this server) shrinks only as far as its own text allows (1 KiB to about "
        "40%). On this server the W2-alert \"deflate\" rows send exactly the bytes of the "
        "plain rows (under the threshold), so their difference is the run's noise.",
        "",
        "`make bench-wire` (or `.venv/bin/python -m bench.wire [--quick]`) runs only this "
        "section and rewrites it; `make bench` includes it unless `BENCH_ARGS=--no-wire`.",
        WIRE_END,
    ])


def write_block(md_path: str, block: str) -> None:
    """Puts block into the page at md_path, replacing an earlier one, before "## Reproduce"."""
    with open(md_path, encoding="utf-8") as fh:
        page = fh.read()
    start, end = page.find(WIRE_START), page.find(WIRE_END)
    if start >= 0 and end > start:
        page = page[:start] + page[end + len(WIRE_END):].lstrip("\n")
    at = page.find("## Reproduce")
    page = page[:at] + block + "\n\n" + page[at:] if at >= 0 else page + "\n" + block + "\n"
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(page)


def text_table(report: dict[str, Any]) -> str:
    """Returns the results table and ratios as plain text for the terminal."""
    return "\n".join([*_rows(report), "", *_ratios(report)])

