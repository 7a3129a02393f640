"""The command line every benchmark entry point shares, the machine's description, and how a
report is saved, printed and written into docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.modes import MODES, ROOT, Clock, Mode
from bench.procs import prepare_process

__all__ = ["parser", "header", "machine_info", "main", "publish"]

Measure = Callable[[argparse.Namespace, Mode, Clock, str], Awaitable[dict[str, Any]]]


def parser(description: str, micro: str = "") -> argparse.ArgumentParser:
    """Returns a parser with every entry point's options (and --micro if micro names a timing)."""
    p = argparse.ArgumentParser(description=description)
    if micro:
        p.add_argument("--micro", action="store_true", help=f"only time {micro} in-process")
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


def _version(dist: str) -> str | None:
    """Returns an installed distribution's version, or None."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, kernel, and the versions of everything measured."""
    import tornado

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": os.cpu_count(), "tornado": tornado.version}
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii",
                                            errors="replace") as fh:
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh
                            if ln.startswith("model name")), None)
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as fh:
        info["memory_gib"] = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    for dist in ("websockets", "python-socketio", "aiohttp"):
        info[dist.replace("-", "_")] = _version(dist)
    info["loadgen_loop"] = f"uvloop {uvloop}" if (uvloop := _version("uvloop")) else "asyncio"
    try:
        info["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["node"] = None
    lock = os.path.join(ROOT, "bench", "peers", "node", "package-lock.json")
    with contextlib.suppress(OSError, ValueError, KeyError), open(lock, encoding="utf-8") as fh:
        packages = json.load(fh)["packages"]
        info["node_ws"] = packages["node_modules/ws"]["version"]
        info["node_socketio"] = packages.get("node_modules/socket.io", {}).get("version")
    return info


def save_report(report: dict[str, Any], results_dir: str) -> str:
    """Writes report as <results_dir>/<kind>-<its start, compact>.json; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    stamp = report["started"].replace("-", "").replace(":", "")
    path = os.path.join(results_dir, f"{report['kind']}-{stamp}.json")
    Path(path).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return path


def publish(report: dict[str, Any], args: argparse.Namespace, json_name: str) -> None:
    """Prints the report's sections and writes them (and the plots) into the page."""
    from bench.report import render_sections, write_section

    docs = "" if args.no_docs else args.docs
    sections = render_sections(report, json_name, args.img_dir if docs else "", docs)
    for name, text in sections.items():
        print(f"\n{text}")
        if docs:
            write_section(docs, name, text)
    if docs:
        print(f"\nrewrote {', '.join(sections) or 'no'} section(s) of {docs}")


def main(kind: str, p: argparse.ArgumentParser, measure: Measure, argv: list[str] | None = None,
         micro: Callable[[], dict[str, Any]] | None = None) -> int:
    """Runs measure (or reads --render's report), then saves, prints and writes it."""
    args = p.parse_args(argv)
    if micro is not None and args.micro:
        print(json.dumps(micro(), indent=1))
        return 0
    if args.render:
        report = json.loads(Path(args.render).read_text(encoding="utf-8"))
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
