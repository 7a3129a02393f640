"""REST auth API: register, login and its throttle, refresh rotation, logout, password change."""

from __future__ import annotations

import asyncio
import json

import pytest

from auth import passwords
from models.token import Session
from models.user import User

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
PASSWORD = "/api/v1/users/me/password"

VALID = {"name": "John Doe", "email": "john@example.com", "password": "secure123", "age": 25}


def body(**changes):
    """Returns a valid registration body with some fields changed (None removes a field)."""
    result = {**VALID, **changes}
    return {k: v for k, v in result.items() if v is not None}


def assert_error(status, parsed, expected_status, code=None):
    """Checks the error envelope and status (and the error code when given)."""
    assert status == expected_status, parsed
    assert parsed["success"] is False
    assert isinstance(parsed["error"]["message"], str) and parsed["error"]["message"]
    if code:
        assert parsed["error"]["code"] == code, parsed


# -- register -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_register_returns_tokens_and_user(api):
    """A valid registration answers 201 with both tokens, their type and lifetime, and the user."""
    status, parsed, _ = await api.call("POST", REGISTER, VALID)
    assert status == 201, parsed
    assert parsed["success"] is True
    data = parsed["data"]
    assert set(data) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == api.ctx.settings.access_token_ttl
    user = data["user"]
    assert user["name"] == "John Doe" and user["email"] == "john@example.com"
    assert user["age"] == 25 and user["role"] == "user"
    assert set(user) == {"id", "name", "email", "age", "role", "created_at", "updated_at"}
    assert user["created_at"].endswith("Z")
    status, me, _ = await api.call("GET", ME, token=data["access_token"])
    assert status == 200 and me["data"]["id"] == user["id"]
    row = await api.ctx.run(User.get_by_id, user["id"])
    assert row.role == "user" and row.password_hash.startswith("$argon2id$")


@pytest.mark.gen_test
async def test_register_without_age_stores_null(api):
    """Age is optional: leaving it out registers the user with age null."""
    status, parsed, _ = await api.call("POST", REGISTER, body(age=None))
    assert status == 201, parsed
    assert parsed["data"]["user"]["age"] is None


@pytest.mark.gen_test
async def test_register_normalises_email_to_lower_case(api):
    """The email is stored lower-cased and trimmed, so it can be used to log in in any case."""
    status, parsed, _ = await api.call("POST", REGISTER, body(email="  John@Example.COM "))
    assert status == 201, parsed
    assert parsed["data"]["user"]["email"] == "john@example.com"
    status, _, _ = await api.call("POST", LOGIN, {"email": "JOHN@example.com",
                                                  "password": "secure123"})
    assert status == 200


@pytest.mark.parametrize("field", ["role", "id", "password_hash", "token_version"])
@pytest.mark.gen_test
async def test_register_refuses_privileged_fields(api, field):
    """A body that tries to set role, id or a hash is refused with 400 and creates nobody."""
    value = {"role": "superadmin", "id": 1, "password_hash": "x",
             "token_version": 9}[field]
    status, parsed, _ = await api.call("POST", REGISTER, body(**{field: value}))
    assert_error(status, parsed, 400, "validation_error")
    assert field in parsed["error"]["message"]
    assert await api.ctx.run(lambda: User.select().count()) == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": 5},
        {"name": None},
        {"email": "not-an-email"},
        {"email": "a@b"},
        {"email": "john@example..com"},
        {"email": 42},
        {"email": None},
        {"password": "short7!"},
        {"password": "p" * 129},
        {"password": 12345678},
        {"password": None},
        {"age": -1},
        {"age": 151},
        {"age": 25.5},
        {"age": "25"},
        {"age": True},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}"[:24] for k, v in c.items()),
)
@pytest.mark.gen_test
async def test_register_rejects_invalid_fields(api, changes):
    """Each out-of-range or mistyped field gets 400 naming the field, and no account is made."""
    status, parsed, _ = await api.call("POST", REGISTER, body(**changes))
    assert_error(status, parsed, 400, "validation_error")
    assert next(iter(changes)) in parsed["error"]["message"]
    assert await api.ctx.run(lambda: User.select().count()) == 0


@pytest.mark.parametrize(
    "changes",
    [{"name": "x"}, {"name": "x" * 100}, {"password": "p" * 8}, {"password": "p" * 128},
     {"age": 0}, {"age": 150}],
    ids=lambda c: "-".join(f"{k}={len(v) if isinstance(v, str) else v}" for k, v in c.items()),
)
@pytest.mark.gen_test
async def test_register_accepts_boundary_values(api, changes):
    """The inclusive limits (name 1/100, password 8/128, age 0/150) are accepted."""
    status, parsed, _ = await api.call("POST", REGISTER, body(**changes))
    assert status == 201, parsed


@pytest.mark.gen_test
async def test_register_duplicate_email_in_any_case_conflicts(api):
    """A second account with the same email, in different case, gets 409 and is not created."""
    status, _, _ = await api.call("POST", REGISTER, VALID)
    assert status == 201
    status, parsed, _ = await api.call("POST", REGISTER, body(email="JOHN@Example.com",
                                                              name="Other"))
    assert_error(status, parsed, 409, "conflict")
    assert "email" in parsed["error"]["message"]
    assert await api.ctx.run(lambda: User.select().count()) == 1


@pytest.mark.parametrize("raw", [b"not json", b"{\"name\": ", b"\xff\xfe", b""],
                         ids=["text", "truncated", "binary", "empty"])
@pytest.mark.gen_test
async def test_register_non_json_body_is_bad_request(api, raw):
    """A body that is not JSON gets 400 with the error envelope."""
    status, parsed, _ = await api.call("POST", REGISTER, raw=raw)
    assert_error(status, parsed, 400)


@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None],
                         ids=["array", "string", "number", "null"])
@pytest.mark.gen_test
async def test_register_json_that_is_not_an_object_is_bad_request(api, payload):
    """Valid JSON that is not an object gets 400 explaining that an object is expected."""
    status, parsed, _ = await api.call("POST", REGISTER, raw=json.dumps(payload).encode())
    assert_error(status, parsed, 400, "validation_error")
    assert "object" in parsed["error"]["message"]


@pytest.mark.gen_test
async def test_body_over_one_mebibyte_is_refused(api):
    """A request body over 1 MiB gets 413 with the error envelope, and nothing is created."""
    padding = "x" * (1024 * 1024)
    raw = ('{"name": "John", "email": "big@example.com", "password": "secure123", "pad": "'
           + padding + '"}').encode()
    status, parsed, _ = await api.call("POST", REGISTER, raw=raw)
    assert_error(status, parsed, 413, "payload_too_large")
    assert parsed["error"]["message"] == (
        "request body is larger than the 1 MiB limit")
    assert await api.ctx.run(lambda: User.select().count()) == 0


# -- login --------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_login_returns_a_new_session(api):
    """Logging in with the right password returns working tokens for a new session."""
    registered = await api.register(email="amy@example.com")
    status, parsed, _ = await api.call("POST", LOGIN, {"email": "amy@example.com",
                                                       "password": "password123"})
    assert status == 200, parsed
    data = parsed["data"]
    assert set(data) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert data["user"] == registered["user"]
    assert data["access_token"] != registered["access_token"]
    status, me, _ = await api.call("GET", ME, token=data["access_token"])
    assert status == 200 and me["data"]["email"] == "amy@example.com"
    user_id = registered["user"]["id"]
    assert await api.ctx.run(lambda: Session.select().where(Session.user == user_id).count()) == 2


@pytest.mark.gen_test
async def test_login_unknown_email_and_wrong_password_look_the_same(api):
    """An unknown email and a wrong password get the identical 401 status and body."""
    await api.register(email="amy@example.com")
    wrong = await api.call("POST", LOGIN, {"email": "amy@example.com", "password": "wrongpass1"})
    unknown = await api.call("POST", LOGIN, {"email": "nobody@example.com",
                                             "password": "wrongpass1"})
    assert wrong[0] == unknown[0] == 401
    assert wrong[1] == unknown[1]
    assert_error(*wrong[:2], 401, "unauthorized")
    assert "access_token" not in str(wrong[1])


@pytest.mark.parametrize(
    "payload",
    [{"email": "a@example.com"}, {"password": "password123"}, {"email": 1, "password": "x"},
     {"email": "", "password": ""}],
    ids=["no-password", "no-email", "non-string", "empty"],
)
@pytest.mark.gen_test
async def test_login_missing_fields_is_bad_request(api, payload):
    """A login body without both email and password strings gets 400."""
    status, parsed, _ = await api.call("POST", LOGIN, payload)
    assert_error(status, parsed, 400, "validation_error")


@pytest.mark.gen_test
async def test_login_non_json_body_is_bad_request(api):
    """A login body that is not JSON gets 400."""
    status, parsed, _ = await api.call("POST", LOGIN, raw=b"email=a&password=b")
    assert_error(status, parsed, 400)


@pytest.mark.gen_test
async def test_login_throttled_after_five_failures_per_account_and_address(api):
    """After 5 failed logins for one account from one address, even the right password gets 429."""
    await api.register(email="amy@example.com")
    bad = {"email": "amy@example.com", "password": "wrongpass1"}
    for _ in range(5):
        status, parsed, _ = await api.call("POST", LOGIN, bad)
        assert status == 401, parsed
    status, parsed, headers = await api.call("POST", LOGIN, {"email": "AMY@example.com",
                                                             "password": "password123"})
    assert_error(status, parsed, 429, "rate_limited")
    retry_after = int(headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    # Another account from the same client is not affected by amy's lock.
    other = await api.register(email="bob@example.com")
    status, parsed, _ = await api.call("POST", LOGIN, {"email": "bob@example.com",
                                                       "password": "password123"})
    assert status == 200 and parsed["data"]["user"]["id"] == other["user"]["id"]


@pytest.mark.gen_test
async def test_parallel_wrong_passwords_cannot_overtake_the_account_limit(api, monkeypatch):
    """Eight simultaneous wrong passwords: only five are ever checked, the rest get 429."""
    await api.register(email="amy@example.com")
    checked = []
    real_verify = passwords.verify_password

    def counting_verify(password, password_hash):
        checked.append(password)
        return real_verify(password, password_hash)

    monkeypatch.setattr(passwords, "verify_password", counting_verify)
    bad = {"email": "amy@example.com", "password": "wrongpass1"}
    results = await asyncio.gather(*(api.call("POST", LOGIN, bad) for _ in range(8)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [401] * 5 + [429] * 3
    assert len(checked) == 5


@pytest.mark.gen_test
async def test_login_throttles_unknown_accounts_too(api):
    """An unknown email is throttled like a real one, so the 429 reveals nothing."""
    bad = {"email": "ghost@example.com", "password": "wrongpass1"}
    for _ in range(5):
        status, _, _ = await api.call("POST", LOGIN, bad)
        assert status == 401
    status, parsed, headers = await api.call("POST", LOGIN, bad)
    assert_error(status, parsed, 429, "rate_limited")
    assert int(headers["Retry-After"]) > 0


@pytest.mark.gen_test
async def test_successful_login_resets_the_failure_count(api):
    """A successful login clears earlier failures, so the account is not locked afterwards."""
    await api.register(email="amy@example.com")
    bad = {"email": "amy@example.com", "password": "wrongpass1"}
    for _ in range(4):
        assert (await api.call("POST", LOGIN, bad))[0] == 401
    await api.login("amy@example.com")
    for _ in range(4):
        assert (await api.call("POST", LOGIN, bad))[0] == 401
    await api.login("amy@example.com")


@pytest.mark.gen_test(timeout=30)  # 31 password hashes: seconds on a busy machine
async def test_login_throttled_per_ip(api):
    """More than 30 logins a minute from one IP get 429 with Retry-After, whatever the account."""
    statuses = []
    for n in range(31):
        status, _, headers = await api.call("POST", LOGIN, {"email": f"u{n}@example.com",
                                                            "password": "wrongpass1"})
        statuses.append(status)
    assert statuses[:30] == [401] * 30
    assert statuses[30] == 429 and int(headers["Retry-After"]) > 0


@pytest.mark.settings(rate_limits=False)
@pytest.mark.gen_test
async def test_rate_limits_off_never_throttles_logins(api):
    """With --rate-limits off, repeated failed logins keep answering 401, never 429."""
    await api.register(email="amy@example.com")
    for _ in range(8):
        status, _, _ = await api.call("POST", LOGIN, {"email": "amy@example.com",
                                                      "password": "wrongpass1"})
        assert status == 401
    await api.login("amy@example.com")


@pytest.mark.gen_test
async def test_register_throttled_per_ip(api):
    """More than 10 registrations a minute from one IP get 429 with Retry-After."""
    for _ in range(10):
        await api.register()
    status, parsed, headers = await api.call("POST", REGISTER, VALID)
    assert_error(status, parsed, 429, "rate_limited")
    assert int(headers["Retry-After"]) > 0


# -- refresh ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_refresh_rotates_tokens(api):
    """A refresh token buys a new working access and refresh token pair."""
    first = await api.register()
    status, parsed, _ = await api.call("POST", REFRESH, {"refresh_token": first["refresh_token"]})
    assert status == 200, parsed
    data = parsed["data"]
    assert data["refresh_token"] != first["refresh_token"]
    assert data["token_type"] == "Bearer" and data["user"]["id"] == first["user"]["id"]
    assert (await api.call("GET", ME, token=data["access_token"]))[0] == 200
    status, again, _ = await api.call("POST", REFRESH, {"refresh_token": data["refresh_token"]})
    assert status == 200, again
    assert (await api.call("GET", ME, token=again["data"]["access_token"]))[0] == 200


@pytest.mark.gen_test
async def test_reused_refresh_token_revokes_its_family(api):
    """Reusing a rotated refresh token gets 401 and revokes the newest token of that session."""
    first = await api.register()
    _, second, _ = await api.call("POST", REFRESH, {"refresh_token": first["refresh_token"]})
    _, third, _ = await api.call("POST", REFRESH,
                                 {"refresh_token": second["data"]["refresh_token"]})
    newest = third["data"]
    status, parsed, _ = await api.call("POST", REFRESH, {"refresh_token": first["refresh_token"]})
    assert_error(status, parsed, 401, "unauthorized")
    assert "already used" in parsed["error"]["message"]
    status, parsed, _ = await api.call("POST", REFRESH, {"refresh_token": newest["refresh_token"]})
    assert_error(status, parsed, 401, "unauthorized")
    status, _, _ = await api.call("GET", ME, token=newest["access_token"])
    assert status == 401
    sid = api.ctx.issuer.verify(newest["access_token"], "access").sid
    session = await api.ctx.run(Session.get_by_id, sid)
    assert session.revoked_at is not None


@pytest.mark.gen_test
async def test_refresh_reuse_leaves_other_sessions_alone(api):
    """Revoking a session for refresh-token reuse does not log the user out elsewhere."""
    first = await api.register(email="amy@example.com")
    other = await api.login("amy@example.com")
    await api.call("POST", REFRESH, {"refresh_token": first["refresh_token"]})
    status, _, _ = await api.call("POST", REFRESH, {"refresh_token": first["refresh_token"]})
    assert status == 401
    assert (await api.call("GET", ME, token=other["access_token"]))[0] == 200
    status, _, _ = await api.call("POST", REFRESH, {"refresh_token": other["refresh_token"]})
    assert status == 200


@pytest.mark.gen_test
async def test_access_token_is_not_a_refresh_token(api):
    """Sending an access token to /auth/refresh gets 401."""
    first = await api.register()
    status, parsed, _ = await api.call("POST", REFRESH, {"refresh_token": first["access_token"]})
    assert_error(status, parsed, 401, "unauthorized")


@pytest.mark.parametrize("payload", [{}, {"refresh_token": ""}, {"refresh_token": 5}],
                         ids=["missing", "empty", "number"])
@pytest.mark.gen_test
async def test_refresh_without_token_is_bad_request(api, payload):
    """A refresh body without a refresh_token string gets 400."""
    status, parsed, _ = await api.call("POST", REFRESH, payload)
    assert_error(status, parsed, 400, "validation_error")


@pytest.mark.gen_test
async def test_refresh_garbage_token_is_unauthorized(api):
    """A refresh_token that is not a valid JWT gets 401."""
    status, parsed, _ = await api.call("POST", REFRESH, {"refresh_token": "not.a.jwt"})
    assert_error(status, parsed, 401, "unauthorized")


# -- logout -------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_logout_revokes_the_session(api):
    """After logout, the session's access token and refresh token both get 401."""
    data = await api.register(email="amy@example.com")
    other = await api.login("amy@example.com")
    status, parsed, _ = await api.call("POST", LOGOUT, token=data["access_token"])
    assert status == 200 and parsed["success"] is True
    assert_error(*(await api.call("GET", ME, token=data["access_token"]))[:2], 401)
    status, parsed, _ = await api.call("POST", REFRESH, {"refresh_token": data["refresh_token"]})
    assert_error(status, parsed, 401)
    # The other login of the same user keeps working.
    assert (await api.call("GET", ME, token=other["access_token"]))[0] == 200


@pytest.mark.gen_test
async def test_logout_requires_a_token(api):
    """Logout without a bearer token gets 401 saying how to authenticate."""
    status, parsed, _ = await api.call("POST", LOGOUT)
    assert_error(status, parsed, 401, "unauthorized")
    assert "Bearer" in parsed["error"]["message"]


@pytest.mark.gen_test
async def test_logout_twice_is_unauthorized(api):
    """A second logout with the same, now revoked, access token gets 401."""
    data = await api.register()
    assert (await api.call("POST", LOGOUT, token=data["access_token"]))[0] == 200
    assert (await api.call("POST", LOGOUT, token=data["access_token"]))[0] == 401


# -- password change ----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_password_change_rotates_every_credential(api):
    """A password change returns new tokens; every older token stops working; the new ones work."""
    first = await api.register(email="amy@example.com")
    second = await api.login("amy@example.com")
    status, parsed, _ = await api.call(
        "POST", PASSWORD, {"current_password": "password123", "new_password": "newpassword456"},
        token=first["access_token"])
    assert status == 200, parsed
    fresh = parsed["data"]
    assert set(fresh) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    for old in (first, second):
        assert (await api.call("GET", ME, token=old["access_token"]))[0] == 401
        status, _, _ = await api.call("POST", REFRESH, {"refresh_token": old["refresh_token"]})
        assert status == 401
    assert (await api.call("GET", ME, token=fresh["access_token"]))[0] == 200
    status, rotated, _ = await api.call("POST", REFRESH,
                                        {"refresh_token": fresh["refresh_token"]})
    assert status == 200, rotated
    status, _, _ = await api.call("POST", LOGIN, {"email": "amy@example.com",
                                                  "password": "password123"})
    assert status == 401
    await api.login("amy@example.com", "newpassword456")
    row = await api.ctx.run(User.get_by_id, first["user"]["id"])
    assert row.token_version == 2


@pytest.mark.gen_test
async def test_password_change_with_wrong_current_password_is_unauthorized(api):
    """A wrong current_password gets 401 and the old password and tokens keep working."""
    data = await api.register(email="amy@example.com")
    status, parsed, _ = await api.call(
        "POST", PASSWORD, {"current_password": "wrongpass1", "new_password": "newpassword456"},
        token=data["access_token"])
    assert_error(status, parsed, 401, "unauthorized")
    assert "current password" in parsed["error"]["message"]
    assert (await api.call("GET", ME, token=data["access_token"]))[0] == 200
    await api.login("amy@example.com")


@pytest.mark.parametrize(
    "payload",
    [{"current_password": "password123", "new_password": "short"},
     {"current_password": "password123", "new_password": "x" * 129},
     {"current_password": "password123"},
     {"new_password": "newpassword456"},
     {"current_password": "password123", "new_password": "newpassword456", "role": "admin"}],
    ids=["short", "long", "no-new", "no-current", "extra-field"],
)
@pytest.mark.gen_test
async def test_password_change_validates_body(api, payload):
    """A bad password-change body gets 400 and leaves the password unchanged."""
    data = await api.register(email="amy@example.com")
    status, parsed, _ = await api.call("POST", PASSWORD, payload, token=data["access_token"])
    assert_error(status, parsed, 400, "validation_error")
    await api.login("amy@example.com")


@pytest.mark.gen_test
async def test_password_change_requires_a_token(api):
    """Changing a password without a bearer token gets 401."""
    status, parsed, _ = await api.call(
        "POST", PASSWORD, {"current_password": "password123", "new_password": "newpassword456"})
    assert_error(status, parsed, 401, "unauthorized")


# -- generic ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_unknown_route_is_json_not_found(api):
    """An unknown path answers 404 in the error envelope."""
    status, parsed, _ = await api.call("GET", "/api/v1/nope")
    assert_error(status, parsed, 404, "not_found")


@pytest.mark.gen_test
async def test_wrong_method_is_method_not_allowed(api):
    """GET on a POST-only route answers 405 in the error envelope."""
    status, parsed, _ = await api.call("GET", LOGIN)
    assert_error(status, parsed, 405)
