"""The rooms REST API: creation, visibility, members, deletion, messages and presence."""

from __future__ import annotations

import pytest

ROOMS = "/api/v1/rooms"


def error_code(status: int, body: dict, expected: int) -> str:
    """Asserts an error envelope with the expected status and returns its code."""
    assert status == expected, body
    assert body["success"] is False and body["error"]["message"]
    return body["error"]["code"]


@pytest.mark.gen_test
async def test_create_returns_the_room_and_makes_the_creator_owner_and_member(api):
    """POST /rooms answers 201 with the room; the creator owns it and is its first member."""
    user = await api.register()
    status, body, _ = await api.call("POST", ROOMS, {"name": "dev.team-1", "title": "Dev",
                                                     "private": True}, user["access_token"])
    assert status == 201
    room = body["data"]
    assert room == {**room, "name": "dev.team-1", "channel": "room:dev.team-1", "title": "Dev",
                    "private": True, "owner_id": user["user"]["id"], "subscribers": 0,
                    "online": 0}
    status, body, _ = await api.call("GET", f"{ROOMS}/dev.team-1/members",
                                     token=user["access_token"])
    assert [(m["user_id"], m["owner"]) for m in body["data"]["members"]] == [
        (user["user"]["id"], True)]


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [
    {"name": "Upper"}, {"name": ""}, {"name": "a" * 65}, {"name": "sp ace"}, {"name": 5},
    {}, {"name": "ok", "private": "yes"}, {"name": "ok", "title": "t" * 201},
    {"name": "ok", "owner": 1},
])
async def test_create_rejects_bad_input_with_400(api, body):
    """Bad names, types or unknown fields get 400 and create nothing."""
    user = await api.register()
    status, parsed, _ = await api.call("POST", ROOMS, body, user["access_token"])
    assert error_code(status, parsed, 400) == "validation_error"
    status, parsed, _ = await api.call("GET", ROOMS, token=user["access_token"])
    assert [r["name"] for r in parsed["data"]["rooms"]] == ["lobby"]


@pytest.mark.gen_test
async def test_duplicate_name_is_409_and_lobby_exists_from_start(api):
    """A taken name (room:lobby included) answers 409."""
    user = await api.register()
    for _ in range(2):
        status, body, _ = await api.call("POST", ROOMS, {"name": "dup"}, user["access_token"])
    assert error_code(status, body, 409) == "conflict"
    status, body, _ = await api.call("POST", ROOMS, {"name": "lobby"}, user["access_token"])
    assert status == 409


@pytest.mark.gen_test
@pytest.mark.settings(max_rooms_per_user=2)
async def test_rooms_per_user_are_capped(api):
    """Past --max-rooms-per-user a user gets 403 naming the limit."""
    user = await api.register()
    for name in ("r1", "r2"):
        status, _, _ = await api.call("POST", ROOMS, {"name": name}, user["access_token"])
        assert status == 201
    status, body, _ = await api.call("POST", ROOMS, {"name": "r3"}, user["access_token"])
    assert error_code(status, body, 403) == "forbidden" and "2 rooms" in body["error"]["message"]


@pytest.mark.gen_test
async def test_list_shows_public_and_own_rooms_and_admins_see_all(api):
    """Users see public rooms and private rooms they belong to; admins see every room."""
    owner, other = await api.register(), await api.register()
    admin = await api.admin()
    await api.call("POST", ROOMS, {"name": "open"}, owner["access_token"])
    await api.call("POST", ROOMS, {"name": "hidden", "private": True}, owner["access_token"])

    async def names(token: str) -> list[str]:
        status, body, _ = await api.call("GET", ROOMS, token=token)
        assert status == 200
        return [r["name"] for r in body["data"]["rooms"]]

    assert await names(owner["access_token"]) == ["hidden", "lobby", "open"]
    assert await names(other["access_token"]) == ["lobby", "open"]
    assert await names(admin["access_token"]) == ["hidden", "lobby", "open"]
    status, body, _ = await api.call("GET", f"{ROOMS}/hidden", token=other["access_token"])
    assert error_code(status, body, 403) == "forbidden"
    status, body, _ = await api.call("GET", f"{ROOMS}/nope", token=other["access_token"])
    assert error_code(status, body, 404) == "not_found"
    status, _, _ = await api.call("GET", ROOMS)
    assert status == 401


@pytest.mark.gen_test
async def test_counts_show_live_subscribers_and_users_online(api):
    """A room's subscribers count connections and online counts users, live."""
    user = await api.register()
    tabs = [await api.ws(user["access_token"]) for _ in range(2)]
    for n, tab in enumerate(tabs):
        await tab.write_message(f'{{"id": {n + 1}, "type": "subscribe", '
                                '"data": {"channel": "room:lobby"}}')
    for tab in tabs:
        while True:
            message = await tab.read_message()
            if '"reply"' in message:
                break
    status, body, _ = await api.call("GET", f"{ROOMS}/lobby", token=user["access_token"])
    assert (body["data"]["subscribers"], body["data"]["online"]) == (2, 1)


@pytest.mark.gen_test
async def test_members_add_and_remove_by_the_rules(api):
    """Owners add and remove members; others may only leave; the owner cannot be removed."""
    owner, guest, stranger = await api.register(), await api.register(), await api.register()
    admin = await api.admin()
    await api.call("POST", ROOMS, {"name": "club", "private": True}, owner["access_token"])
    members = f"{ROOMS}/club/members"
    gid = guest["user"]["id"]
    status, body, _ = await api.call("POST", members, {"user_id": gid}, stranger["access_token"])
    assert error_code(status, body, 403) == "forbidden"
    status, body, _ = await api.call("POST", members, {"user_id": gid}, owner["access_token"])
    assert status == 201 and body["data"]["user_id"] == gid
    status, body, _ = await api.call("POST", members, {"user_id": gid}, owner["access_token"])
    assert error_code(status, body, 409) == "conflict"
    status, body, _ = await api.call("POST", members, {"user_id": 999999}, owner["access_token"])
    assert error_code(status, body, 404) == "not_found"
    status, body, _ = await api.call("POST", members, {"user_id": "1"}, owner["access_token"])
    assert error_code(status, body, 400) == "validation_error"
    status, body, _ = await api.call("DELETE", f"{members}/{owner['user']['id']}",
                                     token=admin["access_token"])
    assert error_code(status, body, 403) == "forbidden"
    status, body, _ = await api.call("DELETE", f"{members}/{gid}", token=guest["access_token"])
    assert status == 200  # leaving
    status, body, _ = await api.call("DELETE", f"{members}/{gid}", token=owner["access_token"])
    assert error_code(status, body, 404) == "not_found"
    status, body, _ = await api.call("GET", members, token=guest["access_token"])
    assert error_code(status, body, 403) == "forbidden"


@pytest.mark.gen_test
async def test_delete_by_owner_or_admin_only_and_never_the_lobby(api):
    """Only the owner or an admin deletes a room; room:lobby cannot be deleted."""
    owner, other = await api.register(), await api.register()
    admin = await api.admin()
    await api.call("POST", ROOMS, {"name": "gone"}, owner["access_token"])
    status, body, _ = await api.call("DELETE", f"{ROOMS}/gone", token=other["access_token"])
    assert error_code(status, body, 403) == "forbidden"
    status, body, _ = await api.call("DELETE", f"{ROOMS}/gone", token=owner["access_token"])
    assert status == 200 and body["data"]["name"] == "gone"
    status, body, _ = await api.call("DELETE", f"{ROOMS}/gone", token=owner["access_token"])
    assert error_code(status, body, 404) == "not_found"
    status, body, _ = await api.call("DELETE", f"{ROOMS}/lobby", token=admin["access_token"])
    assert error_code(status, body, 403) == "forbidden"


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x"])
async def test_messages_query_is_validated(api, query):
    """limit must be 1-100."""
    user = await api.register()
    status, body, _ = await api.call("GET", f"{ROOMS}/lobby/messages?{query}",
                                     token=user["access_token"])
    assert error_code(status, body, 400) == "validation_error"


@pytest.mark.gen_test
async def test_private_room_messages_are_for_members_only(api):
    """A private room's messages answer 403 to outsiders and 200 to members."""
    owner, other = await api.register(), await api.register()
    await api.call("POST", ROOMS, {"name": "vault", "private": True}, owner["access_token"])
    status, body, _ = await api.call("GET", f"{ROOMS}/vault/messages", token=other["access_token"])
    assert error_code(status, body, 403) == "forbidden"
    status, body, _ = await api.call("GET", f"{ROOMS}/vault/messages", token=owner["access_token"])
    assert status == 200 and body["data"] == {"messages": [], "next_before": None}


@pytest.mark.gen_test
async def test_presence_list_is_for_admins(api):
    """GET /api/v1/presence answers 403 to users and lists who is online to admins."""
    user = await api.register()
    status, body, _ = await api.call("GET", "/api/v1/presence", token=user["access_token"])
    assert error_code(status, body, 403) == "forbidden"
