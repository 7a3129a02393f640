"""docs/api.md stays in step with the route table and keeps the seed's examples."""

from __future__ import annotations

import os
import re

from app import ROOT, routes

DOC = open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8").read()
# Server-rendered pages and the client library they load, documented elsewhere.
PAGES = {"/", "/test", r"/clients/js/index\.js"}


def documented_path(pattern: str) -> str:
    """Turns a route regex such as /api/v1/users/([0-9]{1,18}) into /api/v1/users/{id}
    (a room name group into {name}, a member's id into {user_id})."""
    pattern = re.sub(r"members/\(\[0-9\][^)]*\)", "members/{user_id}", pattern)
    pattern = re.sub(r"\(\[a-z0-9[^)]*\)", "{name}", pattern)
    return re.sub(r"\([^)]*\)", "{id}", pattern)


class _FakeContext:
    """routes() only passes the context through, so any object will do."""


def test_every_route_is_documented():
    """Each API route in app.routes() has a section or table row in docs/api.md."""
    paths = {documented_path(r[0]) for r in routes(_FakeContext())} - PAGES  # type: ignore[arg-type]
    assert len(paths) >= 13
    missing = [p for p in sorted(paths) if p not in DOC]
    assert not missing, missing


def test_seed_examples_are_verbatim():
    """The seed's register example and its login piped to jq appear as written there, on the
    host every example uses (127.0.0.1, the default bind address)."""
    register = (
        "curl -X POST http://127.0.0.1:8080/api/v1/auth/register \\\n"
        '  -H "Content-Type: application/json" \\\n'
        "  -d '{\n"
        '    "name": "John Doe",\n'
        '    "email": "john@example.com",\n'
        '    "password": "secure123",\n'
        '    "age": 25\n'
        "  }'"
    )
    login = (
        "curl -X POST http://127.0.0.1:8080/api/v1/auth/login \\\n"
        '  -H "Content-Type: application/json" \\\n'
        "  -d '{\n"
        '    "email": "john@example.com",\n'
        '    "password": "secure123"\n'
        "  }' | jq -r '.data.access_token'"
    )
    one_line = ('curl -X POST http://127.0.0.1:8080/api/v1/auth/register -H "Content-Type: '
                'application/json" -d \'{"name": "John Doe","email": "john@example.com",'
                '"password": "secure123","age": 25}\'')
    for example in (register, login, one_line):
        assert example in DOC, example


def test_every_error_status_is_documented():
    """Each status the API can answer with appears in the documented status table."""
    for status in (400, 401, 403, 404, 405, 409, 413, 429, 500):
        assert f"| {status} |" in DOC, status
    assert "Retry-After" in DOC
