"""Fixtures of the client's tests: one shared server process (tests that need other flags
or restarts start their own), and asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from liveserver import LiveServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with an admin account, shared by the tests that need no special flags."""
    live = LiveServer(tmp_path_factory.mktemp("shared"))
    live.create_admin()
    live.start()
    yield live
    live.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Starts servers of the test's own (with an admin), stopped when the test ends."""
    started: list[LiveServer] = []

    def make(*flags: str) -> LiveServer:
        live = LiveServer(tmp_path / f"s{len(started)}", *flags)
        live.directory.mkdir()
        live.create_admin()
        started.append(live)
        return live.start()

    yield make
    for live in started:
        live.stop()
