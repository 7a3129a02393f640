"""What the benchmarks that write one section of docs/benchmarks.md share (bench/wire.py,
bench/overhead.py, bench/paired.py): the process set-up, saving the report and (re)writing
the section from it."""

from __future__ import annotations

import contextlib
import json
import os
import resource
from collections.abc import Callable
from typing import Any

from bench.clock import Clock
from bench.modes import CLIENT_CORE, NOFILE

__all__ = ["prepare_process", "save_report", "update_docs", "render_saved"]

Render = Callable[[dict[str, Any], str], str]
Write = Callable[[str, str], None]


def prepare_process() -> None:
    """Pins the orchestrator to the client core and raises its open-file limit."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {CLIENT_CORE})
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def save_report(report: dict[str, Any], results_dir: str, prefix: str) -> str:
    """Writes report as <results_dir>/<prefix>-<its start, compact>.json; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    stamp = report["started"].replace("-", "").replace(":", "")
    path = os.path.join(results_dir, f"{prefix}-{stamp}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    return path


def update_docs(report: dict[str, Any], path: str, docs: str, render_block: Render,
                write_block: Write, clock: Clock) -> None:
    """Says where the report went and, unless docs is '', rewrites its section there."""
    clock.say(f"wrote {path}")
    if docs:
        write_block(docs, render_block(report, os.path.basename(path)))
        clock.say(f"updated {docs}")


def render_saved(saved: str, docs: str, render_block: Render, write_block: Write) -> int:
    """Rewrites a section of docs from a saved report (the modules' --render); returns 0."""
    with open(saved, encoding="utf-8") as fh:
        report = json.load(fh)
    write_block(docs, render_block(report, os.path.basename(saved)))
    return 0
