"""Runs the installed server: `events-server ...` and `python -m events_server ...`.

Installed, this file is events_server/__main__.py beside the server's modules (main.py,
app.py, hub/, ...), which import each other by their top-level names as they do in a
checkout; their directory goes first on sys.path, so those names resolve to them.
"""

from __future__ import annotations

import os
import sys

__all__ = ["run"]

HERE = os.path.dirname(os.path.abspath(__file__))


def run() -> None:
    """Runs main.main() on the command line and exits with its status."""
    if sys.path[:1] != [HERE]:
        sys.path.insert(0, HERE)
    import main

    sys.exit(main.main(prog="events-server"))


if __name__ == "__main__":
    run()
