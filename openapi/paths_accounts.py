"""Paths of accounts: register, login, refresh, logout, the caller's profile, admin user routes."""

from __future__ import annotations

from typing import Any

from openapi.build import (
    BEARER,
    PUBLIC,
    body,
    integer,
    link,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    string,
    success,
    text,
    trimmed_text,
)

__all__ = ["paths", "NAME", "EMAIL", "PASSWORD", "USER_ID"]

# services/validation.py name(): trimmed first, then 1-100 characters, no control characters.
NAME = trimmed_text("1-100 characters once trimmed; no control characters", 100,
                    "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029")
EMAIL = string("an email address, at most 254 characters; case does not matter",
               maxLength=254, pattern="^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9]"
                                      "(?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9]"
                                      "(?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
PASSWORD = text("8-128 characters, no NUL", minLength=8, maxLength=128)
AGE = {"type": ["integer", "null"], "minimum": 0, "maximum": 150}
USER_ID = path_param("id", integer(minimum=1, maximum=999_999_999_999_999_999),
                     "the user's id", 1)
ACCOUNT = "Accounts"
USERS = "Users"
BEARER_OF = "Bearer {$response.body#/data/access_token}"
TOKENS = ref("TokenBundle")


def _session_links(source: str) -> dict[str, Any]:
    """Returns the links from an answer with a token bundle to what its tokens open."""
    return {
        "GetMe": link("getMe", f"The {source} session's own profile.",
                      {"header.Authorization": BEARER_OF}),
        "Refresh": link("refresh", f"Rotates the {source} session's refresh token.",
                        request_body={"refresh_token": "$response.body#/data/refresh_token"}),
        "Logout": link("logout", f"Ends the {source} session.",
                       {"header.Authorization": BEARER_OF}),
    }


def _auth() -> dict[str, Any]:
    """Returns the /api/v1/auth paths."""
    register = obj({"name": NAME, "email": EMAIL, "password": PASSWORD, "age": AGE},
                   required=("name", "email", "password"))
    login_links = {
        "Login": link("login", "Logs the new account in.",
                      request_body={"email": "$request.body#/email",
                                    "password": "$request.body#/password"}),
        "GetUser": link("getUser", "Reads the new account.",
                        {"path.id": "$response.body#/data/user/id"}),
        **_session_links("new"),
        "ChangePassword": link("changePassword", "Changes the new account's password.",
                               {"header.Authorization": BEARER_OF},
                               {"current_password": "$request.body#/password",
                                "new_password": "$request.body#/password"}),
    }
    return {
        "/api/v1/auth/register": {"post": operation(
            "register", ACCOUNT, "Create an account",
            "Creates an account with role `user` and logs it in (10 per minute per IP).",
            security=PUBLIC, errors=(400, 409, 413, 429, 503),
            request_body=body(register, {"name": "John Doe", "email": "john@example.com",
                                         "password": "secure123", "age": 25}),
            responses={"201": success("The new session's tokens and the user.", TOKENS,
                                      links=login_links)})},
        "/api/v1/auth/login": {"post": operation(
            "login", ACCOUNT, "Log in",
            "Exchanges email and password for tokens in a new session. An unknown email and "
            "a wrong password get the same answer; attempts are throttled per account and IP.",
            security=PUBLIC, errors=(400, 401, 413, 429, 503),
            request_body=body(obj({"email": text(minLength=1),
                                   "password": text(minLength=1)}),
                              {"email": "john@example.com", "password": "secure123"}),
            responses={"200": success("The new session's tokens and the user.", TOKENS,
                                      links=_session_links("new"))})},
        "/api/v1/auth/refresh": {"post": operation(
            "refresh", ACCOUNT, "Rotate a refresh token",
            "Spends a refresh token and returns a new pair in the same session. A token used "
            "twice answers 401 and revokes its session.",
            security=PUBLIC, errors=(400, 401, 413, 503),
            request_body=body(obj({"refresh_token": text(minLength=1)}),
                              {"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."}),
            responses={"200": success("The session's new tokens.", TOKENS,
                                      links=_session_links("rotated"))})},
        "/api/v1/auth/logout": {"post": operation(
            "logout", ACCOUNT, "Log out",
            "Revokes the caller's session: its tokens stop working, its sockets close.",
            security=BEARER, errors=(401, 413, 503),
            responses={"200": success("Logged out.", obj({"message": {"const": "logged out"}}),
                                      example={"message": "logged out"})})},
    }


def _me() -> dict[str, Any]:
    """Returns the /api/v1/users/me paths."""
    profile = {"name": NAME, "email": EMAIL, "age": AGE}
    change = obj(profile, required=())
    change["minProperties"] = 1
    password = obj({"current_password": text(minLength=1), "new_password": PASSWORD})
    return {
        "/api/v1/users/me": {
            "get": operation("getMe", USERS, "Read your profile", "The caller's user object.",
                             security=BEARER, errors=(401, 503),
                             responses={"200": success("The caller.", ref("User"))}),
            "patch": operation(
                "updateMe", USERS, "Edit your profile",
                "Changes any of name, email, age (`null` clears it); nothing else may be set.",
                security=BEARER, errors=(400, 401, 409, 413, 503),
                request_body=body(change, {"name": "John Q. Doe", "age": 26}),
                responses={"200": success("The updated user.", ref("User"))})},
        "/api/v1/users/me/password": {"post": operation(
            "changePassword", USERS, "Change your password",
            "Revokes every session of the user and returns tokens for a new one.",
            security=BEARER, errors=(400, 401, 403, 413, 503),
            request_body=body(password, {"current_password": "secure123",
                                         "new_password": "even-more-secure456"}),
            responses={"200": success("Tokens of the new session.", TOKENS)})},
    }


def _admin() -> dict[str, Any]:
    """Returns the admin user-management paths."""
    page = [query_param("page", integer(minimum=1, maximum=1_000_000), "page number", False, 1),
            query_param("per_page", integer(minimum=1, maximum=100), "users per page", False,
                        20)]
    edit = obj({"name": NAME, "email": EMAIL, "age": AGE}, required=())
    edit["minProperties"] = 1
    role = obj({"role": {"enum": ["user", "admin", "superadmin"]}})
    return {
        "/api/v1/users": {"get": operation(
            "listUsers", USERS, "List users", "One page of users by id (admins).",
            security=BEARER, errors=(400, 401, 403, 503), parameters=page,
            responses={"200": success("A page of users.", ref("UserPage"))})},
        "/api/v1/users/{id}": {
            "get": operation("getUser", USERS, "Read a user",
                             "Admins read anyone; other users only themselves.",
                             security=BEARER, errors=(401, 403, 404, 503),
                             parameters=[USER_ID],
                             responses={"200": success("The user.", ref("User"))}),
            "patch": operation(
                "updateUser", USERS, "Edit a user",
                "An admin edits name, email or age (only a superadmin edits a superadmin).",
                security=BEARER, errors=(400, 401, 403, 404, 409, 413, 503),
                parameters=[USER_ID], request_body=body(edit, {"name": "Jane Doe"}),
                responses={"200": success("The updated user.", ref("User"))}),
            "delete": operation(
                "deleteUser", USERS, "Delete a user",
                "Deletes an account (admins; not their own): its tokens fail, its sockets "
                "close.", security=BEARER, errors=(401, 403, 404, 503), parameters=[USER_ID],
                responses={"200": success("The deleted user as it was.", ref("User"))})},
        "/api/v1/users/{id}/role": {"put": operation(
            "changeRole", USERS, "Change a user's role",
            "Admins move users between `user` and `admin`; only a superadmin grants or "
            "removes `superadmin`; nobody changes their own role.",
            security=BEARER, errors=(400, 401, 403, 404, 413, 503), parameters=[USER_ID],
            request_body=body(role, {"role": "admin"}),
            responses={"200": success("The updated user.", ref("User"))})},
    }


def paths() -> dict[str, Any]:
    """Returns every account and user path."""
    return {**_auth(), **_me(), **_admin()}
