"""The dashboard's Delivery panel in real Chromium: latency, rates, drops and close codes."""

from __future__ import annotations

import re

import pytest
from test_browser import chromium, dashboard_login, screenshot, sqlite_only

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - test_browser.chromium() skips or fails first
    expect = None

_MS = re.compile(r"^\d+(\.\d+)? ms$")
_NUMBER = re.compile(r"^[\d.,]+$")


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_delivery_panel_shows_latency_rate_and_close_codes_after_a_broadcast(api):
    """After a broadcast and a client's 1000 close the panel shows latencies, a rate and 1000."""
    admin = await api.admin()
    user = await api.register(name="Panel Watcher")
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#ws-status")).to_have_text("Live")
        await expect(page.locator("#delivery-closes .empty")).to_have_text("No connections closed")
        other = await api.ws(user["access_token"])
        await page.fill("#broadcast-message", "Delivery panel check")
        await page.click("#broadcast-send")
        await expect(page.locator("#broadcast-result")).to_have_text("Delivered to 2 recipients.")
        for cell in ("#lat-p50", "#lat-p95", "#lat-p99"):
            await expect(page.locator(cell)).to_have_text(_MS)
        await expect(page.locator("#lat-publishes")).to_contain_text("publishes in the last 5 min")
        await expect(page.locator("#delivery-drops")).to_have_text("0")
        await expect(page.locator("#delivery-msgs")).to_have_text(_NUMBER)
        other.close(1000)
        await expect(page.locator("#delivery-closes [data-code='1000'] .close-count")).to_have_text(
            "1")
        await expect(page.locator("#delivery-chart svg.chart-svg path.line-conn")).to_have_count(1)
        await page.locator("#delivery-panel").scroll_into_view_if_needed()
        await screenshot(page, "dashboard-delivery")
        assert watched.errors == []
