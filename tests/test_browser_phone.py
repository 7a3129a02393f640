"""The pages on a 390 px wide phone screen in real Chromium: nothing scrolls sideways (wide
tables and examples scroll inside their card), and the top bar wraps with every item in view."""

from __future__ import annotations

import pytest
from test_browser import dashboard_login, expect, screenshot, sqlite_only
from test_browser_rooms import browser_contexts, connected_test_page

PHONE = {"width": 390, "height": 844}

# Every element that sticks out of the viewport without a scrolling box around it to hold it.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const held = (e) => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') return true;
    }
    return false;
  };
  const out = [];
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (!r.width || (r.left >= -0.5 && r.right <= width + 0.5) || held(e)) continue;
    out.push(`${e.tagName.toLowerCase()}#${e.id}.${e.className} ${r.left}..${r.right}`);
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, out};
}"""


async def assert_fits(page, name: str) -> None:
    """Asserts the page does not scroll sideways at 390 px and every top-bar item is in view."""
    result = await page.evaluate(OVERFLOW)
    assert result["width"] == PHONE["width"]
    assert result["scrollWidth"] <= PHONE["width"], result
    assert result["out"] == [], result
    items = page.locator(".topbar .brand, .topbar .nav a, .topbar-right > :not([hidden]), "
                         ".topbar-right > :not([hidden]) > *")
    assert await items.count() >= 3
    for item in await items.all():
        await expect(item).to_be_visible()
        box = await item.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
    await screenshot(page, f"phone-{name}")


async def wrapped(page) -> bool:
    """Whether the top bar's right-hand items sit below the brand (the bar wrapped)."""
    brand = await page.locator(".topbar .brand").bounding_box()
    right = await page.locator(".topbar-right").bounding_box()
    return right["y"] >= brand["y"] + brand["height"]


@sqlite_only
# The webhooks card shows with a webhook URL; a type that never happens here keeps it idle.
@pytest.mark.settings(webhook_url="http://127.0.0.1:9/webhooks", webhook_events=("user.deleted",))
@pytest.mark.gen_test(timeout=150)
async def test_pages_fit_a_phone_screen(api):
    """/ signed out, / as an admin with rows in every table, / as a user, /test with a room
    and a log, and /docs with an operation open all fit 390 px: no sideways scroll, and the
    top bar wraps instead."""
    admin = await api.admin()
    token = admin["access_token"]
    user = await api.register(name="Maximiliane Featherstonehaugh-Wolfeschlegelstein")
    for name in ("design-reviews-and-long-names", "ops"):
        status, body, _ = await api.call("POST", "/api/v1/rooms", {"name": name}, token)
        assert status == 201, body
    status, body, _ = await api.call("POST", "/api/v1/admin/api-keys",
                                     {"name": "billing-and-invoicing-service"}, token)
    assert status == 201, body
    other = await api.ws(user["access_token"])
    async with browser_contexts(1) as (context,):
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#ws-status")).to_have_text("Live")
        # The desktop's top bar stays one line.
        assert (await page.locator(".topbar").bounding_box())["height"] == 58
        assert not await wrapped(page)

        await page.set_viewport_size(PHONE)
        status, _, _ = await api.call("POST", "/ws/broadcast",
                                      {"message": "A long alert " * 8, "priority": "high"}, token)
        assert status == 200
        await expect(page.locator("#users-body tr")).to_have_count(2)
        await expect(page.locator("#rooms-body tr")).to_have_count(3)
        await expect(page.locator("#api-keys-body tr[data-key-id]")).to_have_count(1)
        await expect(page.locator("#nodes-body tr")).to_have_count(1)
        await expect(page.locator("#online-list li")).to_have_count(2)
        await expect(page.locator("#feed .evt-system-alert")).to_have_count(1)
        await expect(page.locator("#webhooks-panel")).to_be_visible()
        await page.fill("#api-key-name", "cron")
        await page.click("#api-key-create")  # the key shown once, with its copy button
        await expect(page.locator("#api-key-new")).to_be_visible()
        assert await wrapped(page)
        await assert_fits(page, "dashboard-admin")

        await page.click("#logout")
        await expect(page.locator("#login-view")).to_be_visible()
        await assert_fits(page, "dashboard-signed-out")
        await page.fill("#email", user["user"]["email"])
        await page.fill("#password", "password123")
        await page.click("#login")
        await expect(page.locator("#user-view")).to_be_visible()
        await expect(page.locator("#ws-status")).to_have_text("Live")
        await assert_fits(page, "dashboard-user")

        tester = await connected_test_page(context, api.base_url, user["access_token"])
        test_page = tester.page
        await test_page.set_viewport_size(PHONE)
        await test_page.select_option("#room-select", "room:design-reviews-and-long-names")
        await test_page.click("#room-join")
        await test_page.fill("#room-input", "a-very-long-word-without-spaces-" * 4)
        await test_page.press("#room-input", "Enter")
        await expect(test_page.locator("#room-messages .room-msg")).to_have_count(1)
        await expect(test_page.locator("#messages li[data-type='channel.message']"))\
            .to_have_count(1)
        assert await wrapped(test_page)
        await assert_fits(test_page, "test-client")

        # The API reference, an operation opened: its example bodies scroll inside it.
        await test_page.goto(api.base_url + "/docs")
        await test_page.locator(".opblock-summary").first.click()
        await expect(test_page.locator(".responses-table").first).to_be_visible()
        await assert_fits(test_page, "api-reference")
        assert watched.errors == [] and tester.errors == []
    other.close()
