"""Smoke test of the fixtures: the app serves on both databases."""

import pytest

from conftest import next_event


@pytest.mark.gen_test
async def test_register_and_connect(api):
    """A registered user opens /ws and a broadcast reaches them."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    admin = await api.admin()
    status, body, _ = await api.call("POST", "/ws/broadcast", {"message": "hi"}, admin["access_token"])
    assert status == 200 and body["recipients"] == 1
    event = await next_event(conn)
    assert event["type"] == "system.alert" and event["data"]["message"] == "hi"
