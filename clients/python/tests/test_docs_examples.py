"""The Python programs and the listen command line in docs/clients.md and the client's README
run as written against a real server (only the address changes to the test server's)."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

import pytest
from liveserver import ROOT

import events_client

pytestmark = pytest.mark.anyio

DOCS = [ROOT / "docs" / "clients.md", ROOT / "clients" / "python" / "README.md"]
WRITTEN_URL = "http://127.0.0.1:8080"


def blocks(path: Path, language: str) -> list[str]:
    """Returns the fenced code blocks of one language in a Markdown file."""
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def programs() -> list[tuple[str, str]]:
    """Returns (name, source) of every complete program (one that calls asyncio.run)."""
    found = [(f"{path.name}#{n}", code) for path in DOCS
             for n, code in enumerate(blocks(path, "python")) if "asyncio.run(" in code]
    assert len(found) >= 3, found
    return found


async def john(url: str) -> None:
    """Registers the account the examples log in with (once per server)."""
    try:
        await events_client.register(url, "John Doe", "john@example.com", "secure123")
    except events_client.ApiError as exc:
        assert exc.status == 409  # registered by an earlier example


@pytest.mark.parametrize(("name", "source"), programs(), ids=[n for n, _ in programs()])
async def test_program_runs_as_written(server, tmp_path, name, source):
    """The program exits 0 and prints what the text around it says it prints."""
    await john(server.url)
    assert WRITTEN_URL in source
    script = tmp_path / "example.py"
    script.write_text(source.replace(WRITTEN_URL, server.url))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    if "follow(" in source:
        assert re.search(r"^\d+ messages in room:lobby$", text, flags=re.M), text
    else:
        assert text.splitlines()[0].startswith("[{'user_id': "), text
        assert "recovery None None {'streams': [{'channel': None, 'recovered': False" in text
        assert "channel.message room:lobby" in text and "'body': {'text': 'hi'}" in text


async def test_listen_command_runs_as_written(server):
    """Each documented `python -m events_client listen` line prints JSON lines at once."""
    await john(server.url)
    commands = [code.replace("\\\n", " ").strip() for path in DOCS
                for code in blocks(path, "bash") if "events_client listen" in code]
    assert len(commands) == 2, commands
    for command in commands:
        argv = shlex.split(command.replace(WRITTEN_URL, server.url))
        assert argv[:3] == ["python", "-m", "events_client"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv[1:], stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        assert first.startswith(b'{"type": "recovery"'), first
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0
