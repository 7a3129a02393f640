"""The dashboard's API keys panel in real Chromium: create, see once, copy, list, revoke."""

from __future__ import annotations

import asyncio
import re

import pytest
from test_browser import chromium, dashboard_login, expect, screenshot, sqlite_only

KEY = re.compile(r"^evk_[A-Za-z0-9_-]{43}$")


async def notify(api, key: str, user_id: int) -> int:
    """Sends an app event to one user with key over the server API; returns the status."""
    body = {"type": "app.invoice.paid", "data": {"n": 1}, "user_id": user_id}
    status, _, _ = await api.call("POST", "/api/v1/server/notify", body,
                                  headers={"X-API-Key": key})
    return status


async def used_keys(api, token: str) -> list[dict]:
    """Returns the key list once every key's first use is recorded (it is written behind)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        status, listed, _ = await api.call("GET", "/api/v1/admin/api-keys", token=token)
        assert status == 200, listed
        if all(k["last_used_at"] for k in listed["data"]):
            return listed["data"]
        assert loop.time() < deadline, listed
        await asyncio.sleep(0.05)


@sqlite_only
@pytest.mark.gen_test(timeout=120)
async def test_dashboard_creates_shows_once_lists_and_revokes_an_api_key(api):
    """An admin creates a key with two scopes: it is shown once with a warning and copied,
    listed with its scopes, works on the server API, and once revoked is gone from the list
    and refused."""
    admin = await api.admin()
    async with chromium() as context:
        await context.grant_permissions(["clipboard-read", "clipboard-write"],
                                        origin=api.base_url)
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#api-keys-body")).to_contain_text("No API keys yet")
        await expect(page.locator("#api-keys-total")).to_have_text("0")

        await page.fill("#api-key-name", "billing")
        for scope in ("presence", "history", "disconnect"):
            await page.uncheck(f"#api-key-form input[value='{scope}']")
        await page.click("#api-key-create")
        shown = page.locator("#api-key-new")
        await expect(shown).to_be_visible()
        await expect(shown).to_contain_text(
            "Key billing created. Copy it now: it is not shown again.")
        key = await page.input_value("#api-key-value")
        assert KEY.match(key), key
        await page.click("#api-key-copy")
        await expect(page.locator("#api-key-copied")).to_have_text("Copied to the clipboard.")
        assert await page.evaluate("navigator.clipboard.readText()") == key
        await screenshot(page, "dashboard-api-key-created")

        row = page.locator("#api-keys-body tr[data-key-id]")
        await expect(row).to_have_count(1)
        await expect(row.locator(".key-name")).to_have_text("billing")
        await expect(row.locator(".scope")).to_have_text(["publish", "notify"])
        await expect(row.locator(".key-used")).to_have_text("never")
        await expect(page.locator("#api-keys-total")).to_have_text("1")
        assert await notify(api, key, admin["user"]["id"]) == 200
        listed = await used_keys(api, admin["access_token"])
        assert [k["name"] for k in listed] == ["billing"]

        # Shown once: after Done, and on a fresh load of the page, the key is nowhere.
        await page.click("#api-key-done")
        await expect(shown).to_be_hidden()
        assert key not in await page.content()
        await page.reload()
        await expect(row).to_have_count(1)
        await expect(row.locator(".key-used")).not_to_have_text("never")
        assert key not in await page.content()
        await expect(shown).to_be_hidden()

        revoke = row.locator("button", has_text="Revoke")
        await revoke.click()
        await expect(revoke).to_have_text("Confirm revoke")
        assert await notify(api, key, admin["user"]["id"]) == 200  # one click revokes nothing
        await revoke.click()
        await expect(page.locator("#api-keys-body tr[data-key-id]")).to_have_count(0)
        await expect(page.locator("#api-keys-total")).to_have_text("0")
        assert await notify(api, key, admin["user"]["id"]) == 401
        status, listed, _ = await api.call("GET", "/api/v1/admin/api-keys",
                                           token=admin["access_token"])
        assert status == 200 and listed["data"] == []
        assert watched.errors == [] and watched.dialogs == []


@sqlite_only
@pytest.mark.gen_test(timeout=120)
async def test_api_key_form_says_what_is_missing_and_users_do_not_see_the_panel(api):
    """A key without a name or without scopes is not created and the form says why; a user's
    dashboard has no API keys panel."""
    admin = await api.admin()
    user = await api.register(name="Plain User")
    async with chromium() as context:
        watched = await dashboard_login(context, api.base_url, admin["user"]["email"])
        page = watched.page
        await expect(page.locator("#api-keys-total")).to_have_text("0")
        await page.click("#api-key-create")
        await expect(page.locator("#api-key-error")).to_have_text(
            "Give the key a name (the service that will use it).")
        await page.fill("#api-key-name", "cron")
        for box in await page.locator("#api-key-form input[name='scope']").all():
            await box.uncheck()
        await page.click("#api-key-create")
        await expect(page.locator("#api-key-error")).to_have_text("Pick at least one scope.")
        await expect(page.locator("#api-key-new")).to_be_hidden()
        status, listed, _ = await api.call("GET", "/api/v1/admin/api-keys",
                                           token=admin["access_token"])
        assert status == 200 and listed["data"] == []
        assert watched.errors == []

        other = await (await context.browser.new_context()).new_page()
        await other.goto(api.base_url + "/")
        await other.fill("#email", user["user"]["email"])
        await other.fill("#password", "password123")
        await other.click("#login")
        await expect(other.locator("#user-view")).to_be_visible()
        await expect(other.locator("#api-keys-panel")).to_be_hidden()
