"""/test's connection line and transports in real Chromium: a first connection is a fresh
start, its message box starts with a request the server accepts, and the page can follow its
feed and rooms over Server-Sent Events (EventSource) with the same recovery line."""

from __future__ import annotations

import json

import pytest
from test_browser import expect, sqlite_only
from test_browser_recovery import RECOVERY
from test_browser_rooms import browser_contexts, connected_test_page


@sqlite_only
@pytest.mark.gen_test(timeout=120)
async def test_first_connection_is_a_fresh_start_and_the_example_message_is_accepted(api):
    """Connecting shows "connected (fresh start)", not a failed recovery; the message box's
    example is a subscribe the server answers with a reply of its id."""
    user = await api.register(name="First Timer")
    async with browser_contexts(1) as (context,):
        watched = await connected_test_page(context, api.base_url, user["access_token"])
        page = watched.page
        await expect(page.locator(RECOVERY)).to_have_text("connected (fresh start)")
        await expect(page.locator(RECOVERY)).to_have_class("hint hint-ok")
        await expect(page.locator("#messages li.note", has_text="connected (fresh start)"))\
            .to_have_count(1)
        assert await page.locator("#messages li.note", has_text="could not recover").count() == 0

        example = json.loads(await page.input_value("#send-text"))
        assert example == {"id": 1, "type": "subscribe", "data": {"channel": "room:lobby"}}
        await page.click("#send")
        reply = page.locator("#messages li[data-type='reply']")
        await expect(reply).to_have_count(1)
        data = json.loads(await reply.locator(".msg-payload").text_content())
        assert data["channel"] == "room:lobby" and data["subscribed"] is True
        assert await page.locator("#messages li[data-type='error']").count() == 0
        frames = await page.evaluate("window.__sent.map(([, text]) => JSON.parse(text))")
        assert frames[-1] == example

        # The presets write valid requests too: the refresh carries the pasted token.
        await page.click("#preset-refresh")
        refresh = json.loads(await page.input_value("#send-text"))
        assert refresh == {"type": "auth.refresh", "data": {"token": user["access_token"]}}
        await page.click("#preset-subscribe")
        assert json.loads(await page.input_value("#send-text")) == example
        assert watched.errors == [] and watched.dialogs == []
