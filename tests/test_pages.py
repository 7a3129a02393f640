"""The HTML pages and their static assets over plain HTTP."""

from __future__ import annotations

import pathlib
import re

import pytest

# The pages do not depend on the database backend: run them on SQLite only.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "clients" / "js" / "index.js"
DASHBOARD_IDS = ("email", "password", "login", "total-clients", "by-role", "unique-users", "chart",
                 "feed", "broadcast-message", "broadcast-priority", "broadcast-send",
                 "broadcast-result", "users-table", "nodes-table", "profile", "my-feed",
                 "api-keys-table", "api-key-form", "api-key-value")
TEST_CLIENT_IDS = ("token", "connect", "disconnect", "status", "messages", "count", "clear",
                   "login-email", "login-password", "send-text", "send", "close-info",
                   "transport-ws", "transport-sse", "recovery")


async def get(api, path: str):
    response = await api.client.fetch(api.base_url + path, raise_error=False)
    return response, response.body.decode("utf-8", "replace")


def static_paths(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


@sqlite_only
@pytest.mark.gen_test
@pytest.mark.parametrize(("path", "ids"), [("/", DASHBOARD_IDS), ("/test", TEST_CLIENT_IDS)])
async def test_page_has_its_element_ids(api, path, ids):
    """Each page is served as HTML with every element id its scripts and tests rely on."""
    response, html = await get(api, path)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    for element_id in ids:
        assert f'id="{element_id}"' in html, element_id


@sqlite_only
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/test"])
async def test_page_sends_security_headers(api, path):
    """Pages send a CSP that allows only same-origin scripts and sockets, and no framing."""
    response, _ = await get(api, path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "connect-src 'self' ws: wss:" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@sqlite_only
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/test"])
async def test_page_has_no_inline_script_or_remote_asset(api, path):
    """Pages load scripts and styles only from /static (CSP-compatible, no CDN)."""
    _, html = await get(api, path)
    assert "<script>" not in html and "<style" not in html
    assert " on" + "click=" not in html and "style=" not in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    scripts = re.findall(r'<script(?: type="module")? src="([^"]+)"', html)
    assert scripts and all(s.startswith("/static/") for s in scripts)
    assert len(scripts) == html.count("<script")


@sqlite_only
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/test"])
async def test_static_assets_are_served(api, path):
    """Every /static asset a page references is served with a fitting content type."""
    _, html = await get(api, path)
    assets = static_paths(html)
    assert any(".css" in a for a in assets) and any(".js" in a for a in assets)
    for asset in assets:
        response, body = await get(api, asset)
        assert response.code == 200, asset
        assert body.strip(), asset
        kind = response.headers["Content-Type"]
        if ".css" in asset:
            assert kind.startswith("text/css")
        elif ".js" in asset:
            assert "javascript" in kind
        elif ".svg" in asset:
            assert kind.startswith("image/svg")


def test_scripts_never_write_html():
    """The page scripts and the client library render data with textContent: no innerHTML,
    outerHTML or document.write."""
    static = ROOT / "static"
    for script in [*static.glob("*.js"), LIBRARY]:
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{script.name} uses {sink}"


@sqlite_only
@pytest.mark.gen_test
@pytest.mark.parametrize(("path", "page_module"), [("/", "dashboard.js"), ("/test", "test.js")])
async def test_pages_run_on_the_client_library_module(api, path, page_module):
    """A page's socket code is a module that imports the library from clients/js, served as
    is (one source, no copy) and revalidated on every load; nothing else of the package is."""
    _, html = await get(api, path)
    assert re.search(rf'<script type="module" src="/static/{re.escape(page_module)}\?v=', html)
    _, source = await get(api, f"/static/{page_module}")
    assert "from '/clients/js/index.js';" in source
    response, body = await get(api, "/clients/js/index.js")
    assert response.code == 200
    assert "javascript" in response.headers["Content-Type"]
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert body == LIBRARY.read_text(encoding="utf-8")
    for other in ("package.json", "protobuf.js", "events.proto", "index.d.ts", "test/server.js"):
        response, _ = await get(api, f"/clients/js/{other}")
        assert response.code == 404, other
    response, _ = await get(api, "/static/client.js")
    assert response.code == 404  # the page's own copy of the client is gone


@sqlite_only
@pytest.mark.gen_test
async def test_unknown_page_is_json_404(api):
    """Paths that are neither pages nor API routes still get the JSON 404 envelope."""
    response, body = await get(api, "/no-such-page")
    assert response.code == 404
    assert '"success": false' in body
