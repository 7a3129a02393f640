"""Inputs the API fuzzer (make fuzz-api) found answered differently from the OpenAPI document,
each now answered as documented: unknown fields refused everywhere, whole numbers written as
25.0, ids too large for the database, scopes as a list, history cursors, final newlines, query
parameters given twice."""

from __future__ import annotations

import pytest
from test_server_api import new_key, server

from services import validation as v
from services.apikeys import parse_scopes

LARGE = 2**64  # past a 64-bit column: SQLite raised OverflowError (a 500) before ids were bounded


@pytest.mark.gen_test
async def test_login_and_refresh_refuse_unknown_fields(api):
    """Login and refresh name an unknown field in `fields` instead of ignoring it."""
    user = await api.register()
    email = user["user"]["email"]
    status, body, _ = await api.call("POST", "/api/v1/auth/login",
                                     {"email": email, "password": "password123", "role": "admin"})
    assert status == 400 and body["error"]["fields"] == {"role": "unknown or read-only field"}
    status, body, _ = await api.call("POST", "/api/v1/auth/refresh",
                                     {"refresh_token": user["refresh_token"], "x": 1})
    assert status == 400 and body["error"]["fields"] == {"x": "unknown or read-only field"}
    status, body, _ = await api.call("POST", "/api/v1/auth/refresh",
                                     {"refresh_token": user["refresh_token"]})
    assert status == 200, body  # the refused attempt did not spend the token


@pytest.mark.gen_test
async def test_whole_numbers_written_with_a_zero_fraction_are_whole_numbers(api):
    """JSON's 39.0 is the integer 39 (as JSON Schema says): accepted for an age and an id;
    39.5 and true are still refused."""
    status, body, _ = await api.call("POST", "/api/v1/auth/register", {
        "name": "Float Age", "email": "float-age@example.com", "password": "password123",
        "age": 39.0})
    assert status == 201 and body["data"]["user"]["age"] == 39
    owner = await api.register()
    assert (await api.call("POST", "/api/v1/rooms", {"name": "floats"},
                           owner["access_token"]))[0] == 201
    member_id = body["data"]["user"]["id"]  # the user registered with age 39.0
    status, body, _ = await api.call("POST", "/api/v1/rooms/floats/members",
                                     {"user_id": float(member_id)}, owner["access_token"])
    assert status == 201 and isinstance(body["data"]["user_id"], int)
    for age in (39.5, True, "39"):
        status, body, _ = await api.call("PATCH", "/api/v1/users/me", {"age": age},
                                         owner["access_token"])
        assert status == 400 and body["error"]["fields"] == {"age": "must be a whole number"}


@pytest.mark.gen_test
async def test_ids_past_the_largest_route_id_are_refused_not_a_server_error(api):
    """A body id above 999999999999999999 (what the routes' ids allow) is a 400 naming the
    field, on both databases, for members, notify and disconnect."""
    owner = await api.register()
    token = owner["access_token"]
    assert (await api.call("POST", "/api/v1/rooms", {"name": "big"}, token))[0] == 201
    too_large = {"user_id": f"must be at most {v.MAX_ID}"}
    for user_id in (LARGE, v.MAX_ID + 1):
        status, body, _ = await api.call("POST", "/api/v1/rooms/big/members",
                                         {"user_id": user_id}, token)
        assert status == 400 and body["error"]["fields"] == too_large, body
    key = await new_key(api)
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.x", "user_id": LARGE}, key)
    assert status == 400 and body["error"]["fields"] == too_large, body
    status, body, _ = await server(api, "/api/v1/server/disconnect", {"user_id": LARGE}, key)
    assert status == 400 and body["error"]["fields"] == too_large, body
    status, body, _ = await server(api, "/api/v1/server/disconnect", {"user_id": v.MAX_ID}, key)
    assert status == 200 and body["data"] == {"disconnected": 0}


@pytest.mark.gen_test
async def test_rest_takes_api_key_scopes_as_a_list_only(api):
    """Over REST `scopes` is a JSON list; a comma-separated string (the command line's form)
    is a 400 there, and still works on the command line."""
    admin = (await api.admin())["access_token"]
    for scopes in ("notify,publish", "", []):
        status, body, _ = await api.call("POST", "/api/v1/admin/api-keys",
                                         {"name": "x", "scopes": scopes}, admin)
        assert status == 400 and set(body["error"]["fields"]) == {"scopes"}, scopes
    status, body, _ = await api.call("POST", "/api/v1/admin/api-keys",
                                     {"name": "x", "scopes": ["notify", "notify"]}, admin)
    assert status == 201 and body["data"]["scopes"] == ["notify"]
    assert parse_scopes(" notify, publish ,") == ["notify", "publish"]


@pytest.mark.gen_test
async def test_history_before_must_be_a_message_id(api):
    """`before` is a message id or empty (the first page); anything else is a 400 naming
    it, where it used to answer an empty page."""
    token = (await api.register())["access_token"]
    for text in ("one", "two", "three"):
        status, _, _ = await api.call("POST", "/api/v1/rooms/lobby/messages",
                                      {"data": {"text": text}}, token)
        assert status == 201
    status, body, _ = await api.call("GET", "/api/v1/rooms/lobby/messages?limit=2&before=",
                                     token=token)
    assert status == 200 and [m["body"]["text"] for m in body["data"]["messages"]] == [
        "three", "two"]
    cursor = body["data"]["next_before"]
    status, body, _ = await api.call(
        "GET", f"/api/v1/rooms/lobby/messages?limit=2&before={cursor}", token=token)
    assert status == 200 and [m["body"]["text"] for m in body["data"]["messages"]] == ["one"]
    for bad in ("0" * 33, "not-an-id", "ABC"):
        status, body, _ = await api.call(
            "GET", f"/api/v1/rooms/lobby/messages?before={bad}", token=token)
        assert status == 400 and set(body["error"]["fields"]) == {"before"}, bad


@pytest.mark.gen_test
async def test_names_ending_in_a_newline_are_refused(api):
    """A room name or an app event type with a final newline is refused (a regex `$` let it
    through), as the document's patterns say."""
    token = (await api.register())["access_token"]
    status, body, _ = await api.call("POST", "/api/v1/rooms", {"name": "dev\n"}, token)
    assert status == 400 and set(body["error"]["fields"]) == {"name"}, body
    key = await new_key(api)
    status, body, _ = await server(api, "/api/v1/server/notify",
                                   {"type": "app.shipped\n", "all": True}, key)
    assert status == 400 and set(body["error"]["fields"]) == {"type"}, body


@pytest.mark.gen_test
async def test_a_query_parameter_given_twice_is_refused_not_one_value_picked(api):
    """Each query parameter takes one value: `?page=x&page=` was answered with the default
    page (the last value won); now every repeated name is a 400 naming it in `fields`, on a
    user route and a server API route alike, and one value is still accepted."""
    admin = await api.admin()
    token = admin["access_token"]
    status, body, _ = await api.call("GET", "/api/v1/users?page=x&page=&per_page=5", None, token)
    assert status == 400 and body["error"]["fields"] == {"page": "is given more than once"}
    status, body, _ = await api.call("GET", "/api/v1/users?page=1&per_page=5&per_page=6&page=2",
                                     None, token)
    assert status == 400 and body["error"]["fields"] == {
        "page": "is given more than once", "per_page": "is given more than once"}
    assert body["error"]["code"] == "validation_error", body
    status, body, _ = await api.call("GET", "/api/v1/users?page=1&per_page=5", None, token)
    assert status == 200 and body["data"]["per_page"] == 5
    key = await new_key(api, "history")
    status, body, _ = await api.call("GET", "/api/v1/server/history?channel=a&channel=b", None,
                                     headers={"X-API-Key": key})
    assert status == 400 and body["error"]["fields"] == {"channel": "is given more than once"}


@pytest.mark.gen_test
async def test_strings_with_nul_are_refused_on_both_databases(api):
    """PostgreSQL cannot store U+0000 (a login or room with one was a 500 there): a NUL in a
    title, a login email, a password or an API key's name is a 400 naming the field."""
    user = await api.register()
    token = user["access_token"]
    status, body, _ = await api.call("POST", "/api/v1/rooms",
                                     {"name": "nul", "title": "a\u0000b"}, token)
    assert status == 400 and body["error"]["fields"] == {"title": v.NUL_REFUSED}
    status, body, _ = await api.call("POST", "/api/v1/auth/login",
                                     {"email": "x\u0000@example.com", "password": "password123"})
    assert status == 400 and body["error"]["fields"] == {"email": v.NUL_REFUSED}
    status, body, _ = await api.call("POST", "/api/v1/auth/register", {
        "name": "Nul", "email": "nul@example.com", "password": "password\u0000123"})
    assert status == 400 and body["error"]["fields"] == {"password": v.NUL_REFUSED}
    admin = await api.admin()
    status, body, _ = await api.call("POST", "/api/v1/admin/api-keys",
                                     {"name": "bill\u0000ing", "scopes": ["notify"]},
                                     admin["access_token"])
    assert status == 400 and body["error"]["fields"] == {"name": v.NUL_REFUSED}
    status, body, _ = await api.call("POST", "/api/v1/rooms",
                                     {"name": "nul", "title": "a b"}, token)
    assert status == 201 and body["data"]["title"] == "a b"


@pytest.mark.gen_test
async def test_an_empty_number_parameter_is_refused_not_taken_as_absent(api):
    """`?limit=` is not a number (the document says integer): 400 naming it, where it was
    answered with the default; leaving the parameter out still means the default."""
    user = await api.register()
    token = user["access_token"]
    assert (await api.call("POST", "/api/v1/rooms", {"name": "empty"}, token))[0] == 201
    status, body, _ = await api.call("GET", "/api/v1/rooms/empty/messages?limit=", None, token)
    assert status == 400 and body["error"]["fields"] == {"limit": "must be a whole number"}
    status, body, _ = await api.call("GET", "/api/v1/rooms/empty/messages", None, token)
    assert status == 200 and body["data"]["messages"] == []
    admin = await api.admin()
    status, body, _ = await api.call("GET", "/api/v1/users?per_page=", None,
                                     admin["access_token"])
    assert status == 400 and body["error"]["fields"] == {"per_page": "must be a whole number"}
