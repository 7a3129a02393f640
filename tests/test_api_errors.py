"""What a newcomer's first mistakes get back: every invalid field named at once, a 405 that
lists the allowed methods, and a favicon where browsers look for one."""

from __future__ import annotations

import pytest

from models.user import User
from services import validation as v
from services.errors import ValidationError

REGISTER = "/api/v1/auth/register"


def fields_of(status: int, body: dict) -> dict[str, str]:
    """Checks a validation error envelope and returns its fields."""
    assert status == 400, body
    assert body["success"] is False
    error = body["error"]
    assert error["code"] == "validation_error" and error["message"], error
    return error["fields"]


@pytest.mark.gen_test
async def test_register_names_every_invalid_field_at_once(api):
    """A register body with several bad fields gets one 400 naming each: a missing field is
    "required", not "must be a string"."""
    status, body, _ = await api.call("POST", REGISTER, {"email": "not-an-email", "age": 200,
                                                        "password": "short"})
    fields = fields_of(status, body)
    assert fields == {"name": "required",
                      "email": "must be a valid address like name@example.com",
                      "password": "must be 8-128 characters long",
                      "age": "must be between 0 and 150"}
    message = body["error"]["message"]
    assert "name is required" in message and "email must be a valid address" in message
    assert await api.ctx.run(lambda: User.select().count()) == 0


@pytest.mark.gen_test
async def test_an_empty_register_body_lists_each_required_field(api):
    """`{}` names name, email and password as required (age is optional)."""
    status, body, _ = await api.call("POST", REGISTER, {})
    assert fields_of(status, body) == {"name": "required", "email": "required",
                                       "password": "required"}


@pytest.mark.gen_test
async def test_unknown_fields_are_named_beside_invalid_ones(api):
    """A read-only field and an invalid one are reported together."""
    status, body, _ = await api.call("POST", REGISTER, {"name": "Ann", "email": "a@example.com",
                                                        "password": 12345678, "role": "admin"})
    assert fields_of(status, body) == {"password": "must be a string",
                                       "role": "unknown or read-only field"}


@pytest.mark.gen_test
async def test_every_rest_body_names_its_fields(api):
    """Profile, password, admin update, role, rooms, members, broadcast and login bodies
    all answer with `fields`."""
    admin = await api.admin()
    user = await api.register()
    token, admin_token = user["access_token"], admin["access_token"]
    uid = user["user"]["id"]
    cases = [
        ("POST", "/api/v1/auth/login", {}, None,
         {"email": "required", "password": "required"}),
        ("POST", "/api/v1/auth/refresh", {}, None, {"refresh_token": "required"}),
        ("PATCH", "/api/v1/users/me", {"name": "", "email": 5, "age": "x"}, token,
         {"name": "must be 1-100 characters long", "email": "must be a string",
          "age": "must be a whole number"}),
        ("POST", "/api/v1/users/me/password", {"new_password": "short"}, token,
         {"current_password": "required", "new_password": "must be 8-128 characters long"}),
        ("PATCH", f"/api/v1/users/{uid}", {"email": "bad", "age": -1}, admin_token,
         {"email": "must be a valid address like name@example.com",
          "age": "must be between 0 and 150"}),
        ("PUT", f"/api/v1/users/{uid}/role", {}, admin_token, {"role": "required"}),
        ("POST", "/api/v1/rooms", {"title": 5, "private": "yes"}, token,
         {"name": "required", "title": "must be a string", "private": "must be true or false"}),
        ("POST", "/api/v1/rooms/lobby/members", {"user_id": 0}, admin_token,
         {"user_id": "must be a positive whole number"}),
        ("POST", "/ws/broadcast", {"priority": "loud", "metadata": []}, admin_token,
         {"message": "required", "priority": "must be one of: low, normal, high, critical",
          "metadata": "must be a JSON object"}),
        ("GET", "/api/v1/users?page=0&per_page=x", None, admin_token,
         {"page": "must be between 1 and 1000000", "per_page": "must be a whole number"}),
    ]
    for method, path, payload, bearer, expected in cases:
        status, body, _ = await api.call(method, path, payload, token=bearer)
        assert fields_of(status, body) == expected, (method, path, body)


def test_fields_collects_then_raises_once():
    """Fields runs every validator, records each complaint, and done() raises them together."""
    fields = v.Fields({"email": "x", "age": 3}, allowed=("name", "email", "age"))
    assert fields.required("name", v.name) is None
    assert fields.required("email", v.email) is None
    assert fields.optional("age", v.age) == 3
    assert fields.optional("missing", v.age, "default") == "default"
    with pytest.raises(ValidationError) as info:
        fields.done()
    assert info.value.fields == {"name": "required",
                                 "email": "must be a valid address like name@example.com"}
    assert info.value.message == ("name is required; "
                                  "email must be a valid address like name@example.com")
    v.Fields({"name": "Ann"}).done()  # nothing recorded: no error


# -- 405 and the favicon -------------------------------------------------------------------


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/api/v1/users/me", "GET, PATCH"),
    ("GET", "/api/v1/auth/login", "POST"),
    ("PUT", "/api/v1/rooms", "GET, POST"),
    ("POST", "/health", "GET"),
    ("POST", "/", "GET"),
    ("POST", "/favicon.ico", "GET, HEAD"),
], ids=lambda x: x if isinstance(x, str) and x.startswith("/") else None)
@pytest.mark.gen_test
async def test_405_lists_the_allowed_methods(api, method, path, allow):
    """A method the route does not support gets 405 with an Allow header listing the ones it
    does (and the JSON envelope on API routes)."""
    status, body, headers = await api.call(method, path, {} if method != "GET" else None)
    assert status == 405
    assert headers["Allow"] == allow
    if path.startswith("/api"):
        assert body["error"]["code"] == "method_not_allowed"


@pytest.mark.gen_test
async def test_favicon_is_served_and_cacheable(api):
    """/favicon.ico answers 200 with the SVG icon, its type, and a day's Cache-Control."""
    status, _, headers = await api.call("GET", "/favicon.ico")
    assert status == 200
    assert headers["Content-Type"] == "image/svg+xml"
    assert headers["Cache-Control"] == "max-age=86400"
    response = await api.client.fetch(api.base_url + "/favicon.ico")
    assert response.body.startswith(b"<svg")
