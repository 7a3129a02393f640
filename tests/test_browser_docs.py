"""/docs in real Chromium: the vendored renderer draws every operation of the OpenAPI
document under the pages' strict CSP, with no console error (a CSP violation is one)."""

from __future__ import annotations

import pytest
from test_browser import chromium, expect, open_page, screenshot, sqlite_only

from config import VERSION
from handlers.pages import CONTENT_SECURITY_POLICY
from openapi import DOCUMENT_PATH, build_document

DOC = build_document(VERSION)
METHODS = ("get", "post", "put", "patch", "delete")


def documented_operations() -> set[tuple[str, str]]:
    """Returns (METHOD, path) for every operation of the document."""
    return {(method.upper(), path) for path, item in DOC["paths"].items()
            for method in METHODS if method in item}


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_docs_page_renders_every_operation_under_the_csp(api):
    """/docs names the document's URL, sends the CSP, loads only its own scripts and shows
    each (method, path) of the document; an operation opens to its responses."""
    status, _, headers = await api.call("GET", "/docs")
    assert status == 200 and headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    async with chromium() as context:
        requested: list[str] = []
        context.on("request", lambda request: requested.append(request.url))
        watched = await open_page(context, api.base_url + "/docs")
        page = watched.page
        root = page.locator("#api-reference")
        assert await root.get_attribute("data-openapi-url") == DOCUMENT_PATH
        blocks = page.locator(".opblock")
        await expect(blocks).to_have_count(len(documented_operations()))
        shown = set()
        for i in range(await blocks.count()):
            block = blocks.nth(i)
            method = (await block.locator(".opblock-summary-method").inner_text()).strip()
            path = (await block.locator(".opblock-summary-path").get_attribute("data-path"))
            shown.add((method, path))
        assert shown == documented_operations()
        await expect(page.locator(".info .title")).to_contain_text("Events server REST API")

        register = page.locator("#operations-Accounts-register")
        await register.locator(".opblock-summary").click()
        await expect(register.locator(".responses-table")).to_contain_text("201")
        await expect(register.locator(".responses-table")).to_contain_text("409")
        await screenshot(page, "docs")
        assert watched.errors == [], watched.errors
        assert all(url.startswith(api.base_url) for url in requested), requested
        assert any(url.startswith(api.base_url + DOCUMENT_PATH) for url in requested)
