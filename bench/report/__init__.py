"""The report: each measured section of docs/benchmarks.md, rendered from one saved run and
written between its markers; the rest of the page is kept by hand."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.report import sections, servers

__all__ = ["RENDER", "markers", "put_section", "write_section", "render_sections"]

RENDER = {"broadcast": servers.broadcast_section, "rooms": servers.rooms_section,
          "storm": sections.storm_section, "cluster": sections.cluster_section,
          "workers": sections.workers_section,
          "wire": sections.wire_section, "overhead": sections.overhead_section,
          "paired": sections.paired_section, "hooks": sections.hooks_section}
RUN_PARTS = {"servers": "broadcast", **{p: p for p in ("rooms", "storm", "cluster", "workers")}}
TAIL = ("## History", "## How it is measured", "## Reproduce")  # the hand-kept end of the page


def markers(name: str) -> tuple[str, str]:
    """Returns the comments that open and close section name in the page."""
    return (f"<!-- {name}: written by bench from one run; do not edit by hand -->",
            f"<!-- /{name} -->")


def put_section(page: str, name: str, text: str) -> str:
    """Returns page with the section replaced, or added before the kept tail."""
    start, end = markers(name)
    block = f"{start}\n{text}\n{end}"
    i, j = page.find(start), page.find(end)
    if 0 <= i < j:
        return page[:i] + block + page[j + len(end):]
    at = min((k for k in (page.find(h) for h in TAIL) if k >= 0), default=-1)
    if at < 0:
        return page.rstrip("\n") + "\n\n" + block + "\n"
    return page[:at] + block + "\n\n" + page[at:]


def write_section(path: str, name: str, text: str) -> None:
    """Writes section name into the page at path, leaving every other section as it is."""
    page = Path(path)
    page.write_text(put_section(page.read_text(encoding="utf-8"), name, text), encoding="utf-8")


def render_sections(report: dict[str, Any], json_name: str, img_dir: str = "",
                    docs: str = "") -> dict[str, str]:
    """Returns the sections a saved report renders to (plots drawn if img_dir)."""
    kind, out = report.get("kind", "run"), {}
    if kind != "run":
        out[kind] = RENDER[kind](report, json_name)
    for part, name in RUN_PARTS.items() if kind == "run" else ():
        if not report.get(part):
            continue
        images: list[str] = []  # markdown lines, one a plot
        if img_dir and part in ("servers", "rooms"):
            from bench.report.plots import draw_plots

            rel = os.path.relpath(img_dir, os.path.dirname(os.path.abspath(docs)))
            images = [f"![{alt}]({rel}/{f})" for alt, f in draw_plots(part, report[part], img_dir)]
        out[name] = RENDER[name](report, json_name, images)
    for part in [p for p in ("wire", "hooks") if kind == "run" and report.get(p)]:
        out[part] = RENDER[part](report[part], json_name)
    return {name: re.sub(r"\n{3,}", "\n\n", text).strip() for name, text in out.items()}
