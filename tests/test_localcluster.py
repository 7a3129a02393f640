"""The local cluster's pieces: the nginx config it generates is the documented one and valid."""

from __future__ import annotations

import os
import re

import pytest

from localcluster.nginx import Nginx, find_nginx, render_config
from localcluster.nodes import ROOT
from localcluster.services import with_database


def _locations(text: str) -> dict[str, list[str]]:
    """Returns each `location X { ... }` block's directives (comments and blanks dropped)."""
    out = {}
    for path, body in re.findall(r"location (\S+) \{(.*?)\n\s*\}", text, re.S):
        lines = [line.split("#")[0].strip() for line in body.splitlines()]
        out[path] = [line for line in lines if line]
    return out


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return fh.read()


def test_generated_nginx_locations_are_the_documented_ones():
    """docs/deployment.md shows the /ws, /sse and / blocks make cluster generates, and the
    README's short form has the same directives (its proxy_pass names one node instead of the
    upstream)."""
    generated = _locations(render_config("127.0.0.1:8000", ["127.0.0.1:8001"], "/tmp/x"))
    assert set(generated) == {"/ws", "/sse", "/"}
    assert _locations(_read("docs/deployment.md")) == generated
    readme = _locations(_read("README.md"))
    for path, directives in generated.items():
        strip = [d for d in directives if not d.startswith("proxy_pass")]
        assert [d for d in readme[path] if not d.startswith("proxy_pass")] == strip


def test_generated_config_passes_nginx_check(tmp_path):
    """`nginx -t` accepts the generated config (upstreams, upgrade map, temp paths)."""
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed")
    Nginx(str(tmp_path / "nginx"), 18999, ["127.0.0.1:18998", "127.0.0.1:18997"],
          binary).test_config()


def test_database_url_keeps_credentials_and_host():
    """The cluster's database URL swaps only the database name."""
    assert (with_database("postgresql://u:p@db:5433/postgres", "events_cluster")
            == "postgresql://u:p@db:5433/events_cluster")
