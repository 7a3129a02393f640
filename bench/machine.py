"""Describes the machine and the versions of everything a run measured."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bench.modes import ROOT

__all__ = ["machine_info"]


def _version(dist: str) -> str | None:
    """Returns an installed distribution's version, or None."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, kernel, load, and the versions of everything measured."""
    import tornado

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": os.cpu_count(), "tornado": tornado.version,
                            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii",
                                            errors="replace") as fh:
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh
                            if ln.startswith("model name")), None)
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as fh:
        info["memory_gib"] = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    for dist, key in (("websockets", "websockets"), ("python-socketio", "python_socketio"),
                      ("aiohttp", "aiohttp")):
        info[key] = _version(dist)
    uvloop = _version("uvloop")
    info["loadgen_loop"] = f"uvloop {uvloop}" if uvloop else "asyncio"
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
