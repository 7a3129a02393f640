"""REST users API: own profile, admin user management and the role-change rules."""

from __future__ import annotations

import pytest

from models.user import User

ME = "/api/v1/users/me"
USERS = "/api/v1/users"


def user_url(user_id: int, suffix: str = "") -> str:
    """The URL of one user (optionally a sub-resource such as /role)."""
    return f"{USERS}/{user_id}{suffix}"


async def stored(api, user_id: int) -> User | None:
    """The user's row as the database holds it now, or None."""
    return await api.ctx.run(User.get_or_none, User.id == user_id)


# -- own profile --------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_get_me_returns_own_profile(api):
    """GET /users/me returns the caller's public profile in the success envelope."""
    data = await api.register(name="Amy", email="amy@example.com", age=41)
    status, parsed, _ = await api.call("GET", ME, token=data["access_token"])
    assert status == 200 and parsed["success"] is True
    assert parsed["data"] == data["user"]
    assert "password_hash" not in parsed["data"] and "token_version" not in parsed["data"]


@pytest.mark.gen_test
async def test_get_me_requires_a_token(api):
    """GET /users/me without a token gets 401."""
    status, parsed, _ = await api.call("GET", ME)
    assert status == 401 and parsed["error"]["code"] == "unauthorized"


@pytest.mark.gen_test
async def test_patch_me_changes_name_email_and_age(api):
    """PATCH /users/me updates name, email (lower-cased) and age, in the response and the row."""
    data = await api.register(name="Amy", email="amy@example.com", age=41)
    status, parsed, _ = await api.call(
        "PATCH", ME, {"name": "Amy Pond", "email": "Pond@Example.com", "age": 42},
        token=data["access_token"])
    assert status == 200, parsed
    user = parsed["data"]
    assert (user["name"], user["email"], user["age"]) == ("Amy Pond", "pond@example.com", 42)
    row = await stored(api, data["user"]["id"])
    assert (row.name, row.email, row.age, row.role) == ("Amy Pond", "pond@example.com", 42, "user")
    await api.login("pond@example.com")


@pytest.mark.gen_test
async def test_patch_me_can_clear_age(api):
    """PATCH /users/me with age null removes the age."""
    data = await api.register(age=41)
    status, parsed, _ = await api.call("PATCH", ME, {"age": None}, token=data["access_token"])
    assert status == 200 and parsed["data"]["age"] is None
    assert (await stored(api, data["user"]["id"])).age is None


@pytest.mark.parametrize(
    "field, value",
    [("role", "admin"), ("role", "superadmin"), ("id", 999), ("password_hash", "x"),
     ("token_version", 99), ("created_at", "2000-01-01T00:00:00Z")],
)
@pytest.mark.gen_test
async def test_patch_me_refuses_mass_assignment(api, field, value):
    """PATCH /users/me with a read-only field gets 400 and changes nothing, not even the rest."""
    data = await api.register(name="Amy")
    status, parsed, _ = await api.call("PATCH", ME, {"name": "Changed", field: value},
                                       token=data["access_token"])
    assert status == 400 and parsed["error"]["code"] == "validation_error"
    assert field in parsed["error"]["message"]
    row = await stored(api, data["user"]["id"])
    assert (row.name, row.role, row.token_version) == ("Amy", "user", 1)


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "x" * 101}, {"email": "nope"}, {"age": 151}, {"age": "3"}],
    ids=["empty", "name-empty", "name-long", "email-bad", "age-high", "age-string"],
)
@pytest.mark.gen_test
async def test_patch_me_validates_fields(api, payload):
    """PATCH /users/me with an invalid or empty body gets 400 and leaves the row unchanged."""
    data = await api.register(name="Amy", age=41)
    status, parsed, _ = await api.call("PATCH", ME, payload, token=data["access_token"])
    assert status == 400 and parsed["success"] is False
    row = await stored(api, data["user"]["id"])
    assert (row.name, row.age) == ("Amy", 41)


@pytest.mark.gen_test
async def test_patch_me_non_json_is_bad_request(api):
    """PATCH /users/me with a non-JSON body gets 400."""
    data = await api.register()
    status, parsed, _ = await api.call("PATCH", ME, raw=b"name=x", token=data["access_token"])
    assert status == 400 and parsed["success"] is False


@pytest.mark.gen_test
async def test_patch_me_to_taken_email_conflicts(api):
    """Changing one's email to another account's email, in any case, gets 409."""
    await api.register(email="taken@example.com")
    data = await api.register(email="amy@example.com")
    status, parsed, _ = await api.call("PATCH", ME, {"email": "TAKEN@example.com"},
                                       token=data["access_token"])
    assert status == 409 and parsed["error"]["code"] == "conflict"
    assert (await stored(api, data["user"]["id"])).email == "amy@example.com"


@pytest.mark.gen_test
async def test_patch_me_to_own_email_is_a_no_op(api):
    """Re-sending one's current email succeeds without a conflict."""
    data = await api.register(email="amy@example.com")
    status, parsed, _ = await api.call("PATCH", ME, {"email": "amy@example.com"},
                                       token=data["access_token"])
    assert status == 200 and parsed["data"]["email"] == "amy@example.com"


# -- admin list ---------------------------------------------------------------------------


@pytest.mark.settings(rate_limits=False)
@pytest.mark.gen_test
async def test_admin_lists_users_in_pages(api):
    """GET /users pages by id with page/per_page and reports total and page count."""
    admin = await api.admin()
    for _ in range(4):
        await api.register()
    token = admin["access_token"]
    status, parsed, _ = await api.call("GET", f"{USERS}?page=1&per_page=2", token=token)
    assert status == 200, parsed
    first = parsed["data"]
    assert (first["page"], first["per_page"], first["total"], first["pages"]) == (1, 2, 5, 3)
    assert len(first["users"]) == 2
    _, parsed, _ = await api.call("GET", f"{USERS}?page=3&per_page=2", token=token)
    last = parsed["data"]["users"]
    assert len(last) == 1
    _, parsed, _ = await api.call("GET", f"{USERS}?page=2&per_page=2", token=token)
    ids = [u["id"] for u in first["users"]] + [u["id"] for u in parsed["data"]["users"]]
    ids += [u["id"] for u in last]
    assert ids == sorted(ids) and len(set(ids)) == 5
    _, parsed, _ = await api.call("GET", f"{USERS}?page=4&per_page=2", token=token)
    assert parsed["data"]["users"] == []
    assert all("password_hash" not in u for u in first["users"])


@pytest.mark.gen_test
async def test_admin_list_defaults_to_twenty_per_page(api):
    """GET /users without parameters returns page 1 with 20 per page."""
    admin = await api.admin()
    status, parsed, _ = await api.call("GET", USERS, token=admin["access_token"])
    assert status == 200
    assert (parsed["data"]["page"], parsed["data"]["per_page"]) == (1, 20)
    assert parsed["data"]["total"] == 1


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=-1", "page=abc", "page=1.5", "per_page=0", "per_page=101",
     "per_page=x", "page=1000001"],
)
@pytest.mark.gen_test
async def test_admin_list_rejects_bad_paging(api, query):
    """Out-of-range or non-numeric page/per_page values get 400 naming the parameter."""
    admin = await api.admin()
    status, parsed, _ = await api.call("GET", f"{USERS}?{query}", token=admin["access_token"])
    assert status == 400 and parsed["error"]["code"] == "validation_error"
    assert query.split("=")[0] in parsed["error"]["message"]


@pytest.mark.gen_test
async def test_non_admin_cannot_list_users(api):
    """GET /users by a plain user gets 403; without a token 401."""
    user = await api.register()
    status, parsed, _ = await api.call("GET", USERS, token=user["access_token"])
    assert status == 403 and parsed["error"]["code"] == "forbidden"
    assert (await api.call("GET", USERS))[0] == 401


# -- admin get / patch / delete -------------------------------------------------------------


@pytest.mark.gen_test
async def test_admin_gets_any_user(api):
    """An admin reads another user's profile by id."""
    admin = await api.admin()
    user = await api.register()
    status, parsed, _ = await api.call("GET", user_url(user["user"]["id"]),
                                       token=admin["access_token"])
    assert status == 200 and parsed["data"] == user["user"]


@pytest.mark.gen_test
async def test_user_gets_self_by_id_but_not_others(api):
    """A plain user may GET /users/{own id} but gets 403 for anyone else."""
    amy = await api.register()
    bob = await api.register()
    status, parsed, _ = await api.call("GET", user_url(amy["user"]["id"]),
                                       token=amy["access_token"])
    assert status == 200 and parsed["data"]["id"] == amy["user"]["id"]
    status, parsed, _ = await api.call("GET", user_url(bob["user"]["id"]),
                                       token=amy["access_token"])
    assert status == 403 and parsed["error"]["code"] == "forbidden"


@pytest.mark.parametrize("user_id", [999999, 999999999999])
@pytest.mark.gen_test
async def test_missing_user_is_not_found(api, user_id):
    """GET, PATCH, DELETE and PUT role on an id that does not exist get 404 for an admin."""
    admin = await api.admin()
    token = admin["access_token"]
    for method, suffix, body in [("GET", "", None), ("PATCH", "", {"name": "x"}),
                                 ("DELETE", "", None), ("PUT", "/role", {"role": "admin"})]:
        status, parsed, _ = await api.call(method, user_url(user_id, suffix), body, token=token)
        assert status == 404, (method, parsed)
        assert parsed["error"]["code"] == "not_found"


@pytest.mark.gen_test
async def test_non_numeric_user_id_is_not_found(api):
    """/users/abc matches no route and gets the JSON 404."""
    admin = await api.admin()
    status, parsed, _ = await api.call("GET", f"{USERS}/abc", token=admin["access_token"])
    assert status == 404 and parsed["success"] is False


@pytest.mark.gen_test
async def test_admin_patches_a_user(api):
    """An admin edits another user's name, email and age; the row changes, the role does not."""
    admin = await api.admin()
    user = await api.register(name="Amy")
    status, parsed, _ = await api.call(
        "PATCH", user_url(user["user"]["id"]), {"name": "Amelia", "email": "a@example.org",
                                                "age": 7},
        token=admin["access_token"])
    assert status == 200, parsed
    row = await stored(api, user["user"]["id"])
    assert (row.name, row.email, row.age, row.role) == ("Amelia", "a@example.org", 7, "user")


@pytest.mark.parametrize("field, value", [("role", "admin"), ("id", 1), ("password_hash", "x")])
@pytest.mark.gen_test
async def test_admin_patch_refuses_mass_assignment(api, field, value):
    """An admin PATCH cannot set role, id or the hash: 400 and the row is unchanged."""
    admin = await api.admin()
    user = await api.register(name="Amy")
    status, parsed, _ = await api.call("PATCH", user_url(user["user"]["id"]),
                                       {"name": "Changed", field: value},
                                       token=admin["access_token"])
    assert status == 400 and parsed["error"]["code"] == "validation_error"
    row = await stored(api, user["user"]["id"])
    assert (row.name, row.role) == ("Amy", "user")


@pytest.mark.gen_test
async def test_non_admin_cannot_patch_or_delete_by_id(api):
    """A plain user gets 403 for PATCH and DELETE on /users/{id}, even their own id."""
    amy = await api.register(name="Amy")
    bob = await api.register()
    for target in (amy["user"]["id"], bob["user"]["id"]):
        status, _, _ = await api.call("PATCH", user_url(target), {"name": "X"},
                                      token=amy["access_token"])
        assert status == 403
        status, _, _ = await api.call("DELETE", user_url(target), token=amy["access_token"])
        assert status == 403
    assert (await stored(api, amy["user"]["id"])).name == "Amy"
    assert await stored(api, bob["user"]["id"]) is not None


@pytest.mark.gen_test
async def test_admin_deletes_a_user_and_their_tokens_die(api):
    """DELETE /users/{id} removes the row and the deleted user's tokens get 401."""
    admin = await api.admin()
    user = await api.register()
    user_id = user["user"]["id"]
    status, parsed, _ = await api.call("DELETE", user_url(user_id), token=admin["access_token"])
    assert status == 200 and parsed["data"]["id"] == user_id
    assert await stored(api, user_id) is None
    status, parsed, _ = await api.call("GET", ME, token=user["access_token"])
    assert status == 401 and parsed["error"]["code"] == "unauthorized"
    status, _, _ = await api.call("POST", "/api/v1/auth/refresh",
                                  {"refresh_token": user["refresh_token"]})
    assert status == 401
    status, _, _ = await api.call("POST", "/api/v1/auth/login",
                                  {"email": user["user"]["email"], "password": "password123"})
    assert status == 401


@pytest.mark.gen_test
async def test_admin_cannot_delete_self(api):
    """An admin deleting their own account gets 403 and stays."""
    admin = await api.admin()
    admin_id = admin["user"]["id"]
    status, parsed, _ = await api.call("DELETE", user_url(admin_id), token=admin["access_token"])
    assert status == 403 and parsed["error"]["code"] == "forbidden"
    assert await stored(api, admin_id) is not None


@pytest.mark.gen_test
async def test_admin_cannot_edit_or_delete_a_superadmin(api):
    """A plain admin gets 403 editing or deleting a superadmin; a superadmin may do both."""
    admin = await api.admin()
    boss = await api.admin("superadmin")
    root = await api.admin("superadmin")
    boss_id = boss["user"]["id"]
    status, _, _ = await api.call("PATCH", user_url(boss_id), {"name": "Demoted"},
                                  token=admin["access_token"])
    assert status == 403
    status, _, _ = await api.call("DELETE", user_url(boss_id), token=admin["access_token"])
    assert status == 403
    assert (await stored(api, boss_id)).name != "Demoted"
    status, _, _ = await api.call("PATCH", user_url(boss_id), {"name": "Renamed"},
                                  token=root["access_token"])
    assert status == 200
    status, _, _ = await api.call("DELETE", user_url(boss_id), token=root["access_token"])
    assert status == 200 and await stored(api, boss_id) is None


# -- roles --------------------------------------------------------------------------------


async def set_role(api, actor, target, role):
    """PUT /users/{id}/role as actor; returns (status, parsed)."""
    status, parsed, _ = await api.call("PUT", user_url(target["user"]["id"], "/role"),
                                       {"role": role}, token=actor["access_token"])
    return status, parsed


@pytest.mark.gen_test
async def test_admin_promotes_and_demotes_between_user_and_admin(api):
    """An admin makes a user an admin and back; the stored role follows each time."""
    admin = await api.admin()
    user = await api.register()
    status, parsed = await set_role(api, admin, user, "admin")
    assert status == 200 and parsed["data"]["role"] == "admin"
    assert (await stored(api, user["user"]["id"])).role == "admin"
    status, parsed = await set_role(api, admin, user, "user")
    assert status == 200 and parsed["data"]["role"] == "user"
    assert (await stored(api, user["user"]["id"])).role == "user"


@pytest.mark.gen_test
async def test_role_change_applies_to_existing_tokens_at_once(api):
    """A promoted user's current token gains admin access; once demoted it gets 403 again."""
    admin = await api.admin()
    user = await api.register()
    token = user["access_token"]
    assert (await api.call("GET", USERS, token=token))[0] == 403
    await set_role(api, admin, user, "admin")
    assert (await api.call("GET", USERS, token=token))[0] == 200
    await set_role(api, admin, user, "user")
    assert (await api.call("GET", USERS, token=token))[0] == 403


@pytest.mark.gen_test
async def test_admin_cannot_grant_superadmin(api):
    """A plain admin granting superadmin gets 403 and the role is unchanged."""
    admin = await api.admin()
    user = await api.register()
    status, parsed = await set_role(api, admin, user, "superadmin")
    assert status == 403 and parsed["error"]["code"] == "forbidden"
    assert (await stored(api, user["user"]["id"])).role == "user"


@pytest.mark.gen_test
async def test_admin_cannot_remove_superadmin(api):
    """A plain admin demoting a superadmin gets 403 and the role is unchanged."""
    admin = await api.admin()
    boss = await api.admin("superadmin")
    for role in ("admin", "user"):
        status, _ = await set_role(api, admin, boss, role)
        assert status == 403
    assert (await stored(api, boss["user"]["id"])).role == "superadmin"


@pytest.mark.gen_test
async def test_superadmin_grants_and_removes_superadmin(api):
    """A superadmin makes a user a superadmin and then demotes them again."""
    root = await api.admin("superadmin")
    user = await api.register()
    status, parsed = await set_role(api, root, user, "superadmin")
    assert status == 200 and parsed["data"]["role"] == "superadmin"
    assert (await stored(api, user["user"]["id"])).role == "superadmin"
    status, parsed = await set_role(api, root, user, "admin")
    assert status == 200 and parsed["data"]["role"] == "admin"
    assert (await stored(api, user["user"]["id"])).role == "admin"


@pytest.mark.parametrize("role", ["admin", "superadmin"])
@pytest.mark.gen_test
async def test_nobody_changes_own_role(api, role):
    """An admin or superadmin changing their own role, up or down, gets 403."""
    me = await api.admin(role)
    for new_role in ("user", "admin", "superadmin"):
        status, parsed = await set_role(api, me, me, new_role)
        assert status == 403, (new_role, parsed)
    assert (await stored(api, me["user"]["id"])).role == role


@pytest.mark.gen_test
async def test_non_admin_cannot_change_roles(api):
    """A plain user gets 403 changing anyone's role, including promoting themself."""
    amy = await api.register()
    bob = await api.register()
    for target in (amy, bob):
        status, parsed = await set_role(api, amy, target, "admin")
        assert status == 403 and parsed["error"]["code"] == "forbidden"
    assert (await stored(api, amy["user"]["id"])).role == "user"
    assert (await stored(api, bob["user"]["id"])).role == "user"


@pytest.mark.gen_test
async def test_role_change_requires_a_token(api):
    """PUT /users/{id}/role without a token gets 401."""
    user = await api.register()
    status, _, _ = await api.call("PUT", user_url(user["user"]["id"], "/role"), {"role": "admin"})
    assert status == 401


@pytest.mark.parametrize(
    "payload",
    [{"role": "root"}, {"role": ""}, {"role": None}, {}, {"role": "admin", "id": 1}],
    ids=["unknown", "empty", "null", "missing", "extra-field"],
)
@pytest.mark.gen_test
async def test_role_change_validates_body(api, payload):
    """An unknown role, a missing role or an extra field gets 400 and changes nothing."""
    admin = await api.admin()
    user = await api.register()
    status, parsed, _ = await api.call("PUT", user_url(user["user"]["id"], "/role"), payload,
                                       token=admin["access_token"])
    assert status == 400 and parsed["error"]["code"] == "validation_error"
    assert (await stored(api, user["user"]["id"])).role == "user"
