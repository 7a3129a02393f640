"""The housekeeper trims the heap after churn, and never runs a garbage collection."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from edge.housekeeper import Housekeeper


def test_it_trims_once_enough_sockets_closed_and_collects_nothing(monkeypatch):
    def no_collection(*args: object) -> int:
        raise AssertionError("a full collection holds the event loop for every live object")

    monkeypatch.setattr(gc, "collect", no_collection)
    server = SimpleNamespace(closed_sockets=0, open_sockets=1000)
    keeper = Housekeeper(server, threshold=50)  # type: ignore[arg-type]
    trims: list[int] = []
    keeper._trim = trims.append
    server.closed_sockets = 499  # fewer than half the open ones
    assert keeper.tick() is False and trims == []
    server.closed_sockets = 500
    assert keeper.tick() is True and trims == [0] and keeper.runs == 1
    assert keeper.tick() is False  # counted from the last run
    server.open_sockets, server.closed_sockets = 10, 549
    assert keeper.tick() is False  # 49 since the last run: fewer than `threshold`
    server.closed_sockets = 550
    assert keeper.tick() is True and len(trims) == 2


def test_without_glibc_it_still_counts_its_runs():
    keeper = Housekeeper(SimpleNamespace(closed_sockets=60, open_sockets=0))  # type: ignore[arg-type]
    keeper._trim = None
    assert keeper.tick() is True and keeper.runs == 1
