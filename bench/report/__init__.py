"""The report: each measured section of docs/benchmarks.md, rendered from one saved run and
written between its markers; the rest of the page is kept by hand."""

from __future__ import annotations

import os
from typing import Any

from bench.report.compare import overhead_section, paired_section, wire_section
from bench.report.recovery import cluster_section, storm_section
from bench.report.servers import broadcast_section, rooms_section

__all__ = ["RENDER", "markers", "put_section", "write_section", "render_sections"]

RENDER = {"broadcast": broadcast_section, "rooms": rooms_section, "storm": storm_section,
          "cluster": cluster_section, "wire": wire_section, "overhead": overhead_section,
          "paired": paired_section}
RUN_PARTS = {"servers": "broadcast", "rooms": "rooms", "storm": "storm", "cluster": "cluster"}
TAIL = ("## History", "## How it is measured", "## Reproduce")  # the hand-kept end of the page


def markers(name: str) -> tuple[str, str]:
    """Returns the comments that open and close section name in the page."""
    return (f"<!-- {name}: written by bench from one run; do not edit by hand -->",
            f"<!-- /{name} -->")


def put_section(page: str, name: str, text: str) -> str:
    """Returns page with section name's text replaced, or, when it has none yet, the section
    put before the hand-kept tail (History, How it is measured, Reproduce)."""
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
    with open(path, encoding="utf-8") as fh:
        page = fh.read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(put_section(page, name, text))


def render_sections(report: dict[str, Any], json_name: str, img_dir: str = "",
                    docs: str = "") -> dict[str, str]:
    """Returns the sections a saved report renders to, by name; a `make bench` run's plots are
    drawn into img_dir (linked relative to the page docs) when it is given."""
    kind = report.get("kind", "run")
    if kind != "run":
        return {kind: RENDER[kind](report, json_name)}
    out = {}
    for part, name in RUN_PARTS.items():
        if not report.get(part):
            continue
        images: list[tuple[str, str]] = []
        if img_dir and part in ("servers", "rooms"):
            from bench.report.plots import draw_plots

            rel = os.path.relpath(img_dir, os.path.dirname(os.path.abspath(docs)))
            images = [(alt, f"{rel}/{f}") for alt, f in draw_plots(part, report[part], img_dir)]
        out[name] = RENDER[name](report, json_name, images)
    if report.get("wire"):
        out["wire"] = wire_section(report["wire"], json_name)
    return out
