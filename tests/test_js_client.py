"""The JavaScript client library's own tests (clients/js/test, node --test), each file against
real servers it starts itself (main.py run by this interpreter, JWT_SECRET set)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

JS = Path(__file__).resolve().parent.parent / "clients" / "js"
FILES = sorted(p.name for p in (JS / "test").glob("*.test.js"))


def require(condition: object, reason: str) -> None:
    """Skips when a tool is missing locally; under CI a missing tool is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: this test must not skip)")
        pytest.skip(reason)


def test_every_promise_has_a_test_file() -> None:
    """The suite covers recovery, a lost position, tokens and revocation, protobuf, the rest."""
    assert FILES == ["auth.test.js", "lost.test.js", "protobuf.test.js", "recovery.test.js",
                     "unit.test.js"]


@pytest.mark.parametrize("name", FILES)
def test_js_client_library(name: str) -> None:
    """Every node --test case of one file passes (none skipped, none cancelled)."""
    node = shutil.which("node")
    require(node, "node is not installed")
    require((JS / "node_modules" / "ws").is_dir() and (JS / "node_modules" / "protobufjs").is_dir(),
            "clients/js/node_modules is missing: run npm ci in clients/js")
    proc = subprocess.run(
        [str(node), "--test", f"test/{name}"], cwd=JS, capture_output=True, text=True,
        timeout=240, env={**os.environ, "EVENTS_PYTHON": sys.executable})
    report = proc.stdout[-8000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, report
    assert "# fail 0" in proc.stdout and "# cancelled 0" in proc.stdout, report
    assert "# skipped 0" in proc.stdout and "# pass 0" not in proc.stdout, report


def test_npm_pack_ships_only_the_library() -> None:
    """npm pack lists the module, its declarations, the protobuf codec and its schema, the
    README and package.json: no tests, no lockfile."""
    npm = shutil.which("npm")
    require(npm, "npm is not installed")
    proc = subprocess.run([str(npm), "pack", "--dry-run", "--json"], cwd=JS, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (package,) = json.loads(proc.stdout)
    assert (package["name"], package["version"]) == ("events-server-client", "0.1.0")
    assert sorted(f["path"] for f in package["files"]) == [
        "README.md", "events.proto", "index.d.ts", "index.js", "package.json", "protobuf.js"]
