"""The close-code table: one definition per close, and docs/websocket.md lists exactly those."""

from __future__ import annotations

import os
import re

from app import ROOT
from hub.disconnect import ALL_CLOSES, MAX_REASON_BYTES

DOC = open(os.path.join(ROOT, "docs", "websocket.md"), encoding="utf-8").read()
ROW = re.compile(r"^\| (\d{4}) \| `([^`]+)` \| `([A-Z0-9_]+)` \|", re.MULTILINE)


def test_docs_close_table_matches_hub_disconnect_exactly():
    """Each row of the docs' close table names a constant with that code and reason, and back."""
    documented = {name: (int(code), reason.removesuffix(": ..."))
                  for code, reason, name in ROW.findall(DOC)}
    defined = {name: (close.code, close.reason) for name, close in ALL_CLOSES.items()}
    assert documented == defined


def test_every_reason_fits_a_close_frame():
    """RFC 6455 allows 123 bytes of reason; every fixed reason fits."""
    for close in ALL_CLOSES.values():
        assert 0 < len(close.reason.encode()) <= MAX_REASON_BYTES
        assert 1000 <= close.code <= 4999


def test_no_close_literal_outside_the_table():
    """Handlers, the hub and main.py use the named closes, never a bare close code literal."""
    pattern = re.compile(r"close\w*\(\s*1\d{3}|\(1\d{3}, \"")
    offenders = []
    for folder in ("handlers", "hub", "services"):
        for name in os.listdir(os.path.join(ROOT, folder)):
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != os.path.join("hub", "disconnect.py"):
                with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
                    offenders += [path for line in fh if pattern.search(line)]
    with open(os.path.join(ROOT, "main.py"), encoding="utf-8") as fh:
        offenders += ["main.py" for line in fh if pattern.search(line)]
    assert offenders == []
