"""The command line every benchmark entry point shares: sizes, where the results and the docs
go, and how a report is saved, printed and written into docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from bench.machine import machine_info
from bench.modes import MODES, ROOT, Clock, Mode
from bench.procs import prepare_process

__all__ = ["parser", "header", "main", "publish", "save_report"]

Measure = Callable[[argparse.Namespace, Mode, Clock, str], Awaitable[dict[str, Any]]]


def parser(description: str) -> argparse.ArgumentParser:
    """Returns a parser with the options every entry point takes; each adds its own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="quick mode's sizes")
    p.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                   help="page whose sections to rewrite ('' for none)")
    p.add_argument("--no-docs", action="store_true", help="write only the JSON")
    p.add_argument("--img-dir", default=os.path.join(ROOT, "docs", "img"))
    p.add_argument("--note", default="", help="conditions of the run, shown on the page")
    p.add_argument("--render", metavar="JSON",
                   help="only rewrite the docs sections from a saved bench/results file")
    return p


def header(mode: Mode) -> dict[str, Any]:
    """Returns what every report starts with: when, which sizes, the machine's load."""
    return {"started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "mode": mode.name, "loadavg_start": os.getloadavg()}


def save_report(report: dict[str, Any], results_dir: str) -> str:
    """Writes report as <results_dir>/<kind>-<its start, compact>.json; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    stamp = report["started"].replace("-", "").replace(":", "")
    path = os.path.join(results_dir, f"{report['kind']}-{stamp}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    return path


def publish(report: dict[str, Any], args: argparse.Namespace, json_name: str) -> None:
    """Prints the report's docs sections and, unless told not to, writes them (and the plots)
    into the page."""
    from bench.report import render_sections, write_section

    docs = "" if args.no_docs else args.docs
    sections = render_sections(report, json_name, args.img_dir if docs else "", docs)
    for name, text in sections.items():
        print(f"\n{text}")
        if docs:
            write_section(docs, name, text)
    if docs:
        print(f"\nrewrote {', '.join(sections) or 'no'} section(s) of {docs}")


def main(kind: str, p: argparse.ArgumentParser, measure: Measure,
         argv: list[str] | None = None) -> int:
    """Parses argv, runs measure (or --render's saved report), then saves, prints and writes
    the report; kind names the report and its file."""
    args = p.parse_args(argv)
    if args.render:
        with open(args.render, encoding="utf-8") as fh:
            report = json.load(fh)
        report["note"] = args.note or report.get("note", "")
        publish(report, args, os.path.basename(args.render))
        return 0
    mode, clock = MODES["quick" if args.quick else "full"], Clock()
    prepare_process()
    tmp = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    report = {"kind": kind, **header(mode), "note": args.note, "machine": machine_info()}
    clock.say(f"{kind}, {mode.name} mode; logs in {tmp}")
    try:
        report.update(asyncio.run(measure(args, mode, clock, tmp)))
    finally:
        report.update(loadavg_end=os.getloadavg(), duration_s=round(clock.elapsed(), 1))
    path = save_report(report, args.results_dir)
    clock.say(f"wrote {path}")
    publish(report, args, os.path.basename(path))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0
