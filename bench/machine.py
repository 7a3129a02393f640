"""Describes the machine and the versions of everything a run measured."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from typing import Any

from bench.modes import ROOT

__all__ = ["machine_info"]


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, kernel and the versions of everything measured."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    info["cores"] = os.cpu_count()
    with contextlib.suppress(OSError):
        with open("/proc/meminfo", encoding="ascii") as fh:
            kib = int(fh.readline().split()[1])
            info["memory_gib"] = round(kib / 1024 / 1024, 1)
    import tornado

    info["tornado"] = tornado.version
    try:
        import websockets

        info["websockets"] = websockets.__version__
    except ImportError:
        info["websockets"] = None
    try:
        info["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["node"] = None
    lock = os.path.join(ROOT, "bench", "peers", "node", "package-lock.json")
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open(lock, encoding="utf-8") as fh:
            packages = json.load(fh)["packages"]
            info["node_ws"] = packages["node_modules/ws"]["version"]
            info["node_socketio"] = packages.get("node_modules/socket.io", {}).get("version")
    from importlib.metadata import PackageNotFoundError, version

    for dist, key in (("python-socketio", "python_socketio"), ("aiohttp", "aiohttp")):
        try:
            info[key] = version(dist)
        except PackageNotFoundError:
            info[key] = None
    try:
        import uvloop

        info["loadgen_loop"] = f"uvloop {uvloop.__version__}"
    except ImportError:
        info["loadgen_loop"] = "asyncio"
    return info
