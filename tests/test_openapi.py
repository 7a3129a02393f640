"""The OpenAPI document: a valid 3.1 document that names exactly the application's routes,
methods and parameters, whose examples and the server's real answers fit its schemas."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from app import LIBRARY_ROUTE, routes
from config import VERSION
from edge.origins import implemented_methods
from openapi import DOCUMENT_PATH, build_document

DOC = build_document(VERSION)
# Not REST: server-rendered pages, the JavaScript client library's file (docs/clients.md) and
# the two streams (docs/websocket.md, docs/sse.md).
NOT_IN_DOCUMENT = {"/", "/test", "/docs", "/ws", "/sse", LIBRARY_ROUTE}
METHODS = ("get", "post", "put", "patch", "delete")
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


class _AnyContext:
    """routes() only passes the context through, so any object will do."""


def route_table() -> dict[str, type]:
    """Returns the application's API routes: Tornado pattern -> handler class."""
    table = {rule[0]: rule[1] for rule in routes(_AnyContext())}  # type: ignore[arg-type]
    return {pattern: handler for pattern, handler in table.items()
            if pattern not in NOT_IN_DOCUMENT}


def shape(path: str) -> str:
    """Returns a path with each parameter, a Tornado group or an OpenAPI {name}, as `{}`."""
    return re.sub(r"\{[^}]+\}", "{}", re.sub(r"\([^)]*\)", "{}", path)).replace("\\.", ".")


def conforms(instance: Any, schema: dict[str, Any]) -> None:
    """Validates instance against a schema of the document (its $refs resolve in it)."""
    jsonschema.Draft202012Validator({**schema, "components": DOC["components"]}).validate(
        instance)


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """Returns the JSON schema of one documented response (following a components ref)."""
    response = DOC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """Returns (path, method, operation) for every operation of the document."""
    return [(path, method, item[method]) for path, item in DOC["paths"].items()
            for method in METHODS if method in item]


def test_document_is_a_valid_openapi_3_1_document():
    """openapi-spec-validator finds nothing wrong with the document, links included."""
    errors = [str(e.message) for e in OpenAPIV31SpecValidator(DOC).iter_errors()]
    assert not errors, errors
    assert DOC["openapi"] == "3.1.0" and DOC["servers"] == [{"url": "/",
                                                             "description": "this server"}]


def test_every_route_is_in_the_document_and_nothing_else():
    """Each API route of app.routes() is a path of the document, and each path a route."""
    table = {shape(pattern) for pattern in route_table()}
    documented = {shape(path) for path in DOC["paths"]}
    assert table - documented == set(), "routes missing from the document"
    assert documented - table == set(), "documented paths that no route serves"
    assert all(path.startswith("/") and "//" not in path for path in DOC["paths"])


def test_every_method_of_every_route_is_an_operation():
    """The methods each handler implements are exactly the operations of its path."""
    by_shape = {shape(path): path for path in DOC["paths"]}
    for pattern, handler in route_table().items():
        path = by_shape[shape(pattern)]
        implemented = {m.lower() for m in implemented_methods(handler)} - {"options"}
        documented = {m for m in METHODS if m in DOC["paths"][path]}
        assert implemented == documented, (path, implemented, documented)


def test_path_parameters_name_the_route_groups_and_their_examples_match():
    """Every {name} of a path is a declared path parameter, and the path filled with the
    parameters' examples is matched by its route's pattern."""
    patterns = {shape(p): re.compile(p) for p in route_table()}
    for path, method, op in operations():
        declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
        assert set(re.findall(r"\{([^}]+)\}", path)) == set(declared), (path, method)
        examples = {name: str(param["example"]) for name, param in declared.items()}
        filled = re.sub(r"\{([^}]+)\}", lambda m, ex=examples: ex[m.group(1)], path)
        assert patterns[shape(path)].fullmatch(filled), (path, filled)


def test_every_operation_documents_its_errors_and_security():
    """Bodies may be refused (400, 413), tokens and keys may be wrong (401), and each error
    response carries the error envelope with its `fields`."""
    schemes = set(DOC["components"]["securitySchemes"])
    for path, method, op in operations():
        statuses = set(op["responses"])
        assert "security" in op, (path, method)
        assert all(set(req) <= schemes for req in op["security"]), (path, method)
        if "requestBody" in op:
            assert {"400", "413"} <= statuses, (path, method)
        if any(req for req in op["security"]) and path != "/metrics":
            assert "401" in statuses, (path, method)
        assert any(s.startswith("2") for s in statuses), (path, method)
    fields = DOC["components"]["schemas"]["ErrorDetail"]["properties"]["fields"]
    assert fields["additionalProperties"] == {"type": "string"}
    for name, response in DOC["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}, name


def test_examples_fit_their_schemas():
    """Each request body, parameter and response example is valid for its own schema."""
    checked = 0
    for _, _, op in operations():
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media and "example" in media:
            conforms(media["example"], media["schema"])
            checked += 1
        for param in op.get("parameters", []):
            if "example" in param:
                conforms(param["example"], param["schema"])
                checked += 1
        for response in op["responses"].values():
            media = response.get("content", {}).get("application/json", {})
            if "example" in media:
                conforms(media["example"], media["schema"])
                checked += 1
    for response in DOC["components"]["responses"].values():
        media = response["content"]["application/json"]
        conforms(media["example"], media["schema"])
    assert checked >= 30, checked


def request_strings(schema: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    """Returns (where, schema) of every string a request schema holds, following $refs."""
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    found = [(where, schema)] if "string" in types else []
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += request_strings(sub, where)
    for name, sub in schema.get("properties", {}).items():
        found += request_strings(sub, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += request_strings(schema[key], f"{where}[]")
    return found


def test_no_request_string_admits_nul():
    """The server refuses U+0000 in every string it is sent (400, services/validation.py), so
    no request schema may admit one: the fuzzer sends what a schema admits and counts a 400 as
    a schema-valid request rejected (login's email once lacked the pattern)."""
    strings = []
    for path, method, op in operations():
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media:
            strings += request_strings(media["schema"], f"{method} {path}")
        for param in op.get("parameters", []):
            strings += request_strings(param["schema"], f"{method} {path} {param['name']}")
    checked = 0
    for where, schema in strings:
        if "enum" in schema or "const" in schema:
            continue
        nul = "a" * max(schema.get("minLength", 1) - 1, 0) + "\u0000"
        assert len(nul) <= schema.get("maxLength", len(nul)), where
        with pytest.raises(jsonschema.ValidationError):
            conforms(nul, schema)
        checked += 1
    assert checked >= 20, checked


def test_links_name_existing_operations():
    """Every link targets an operationId of the document; the stateful chains are there."""
    ids = {op["operationId"] for _, _, op in operations()}
    chains = set()
    for _, _, op in operations():
        for response in op["responses"].values():
            for target in response.get("links", {}).values():
                assert target["operationId"] in ids, target
                chains.add((op["operationId"], target["operationId"]))
    for chain in [("register", "login"), ("login", "getMe"), ("login", "refresh"),
                  ("refresh", "logout"), ("createRoom", "addMember"),
                  ("createRoom", "postMessage"), ("postMessage", "listMessages")]:
        assert chain in chains, chain


@sqlite_only
@pytest.mark.gen_test
async def test_the_server_serves_the_document_without_a_token(api):
    """GET /api/v1/openapi.json answers the document as JSON, to anyone."""
    status, body, headers = await api.call("GET", DOCUMENT_PATH)
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    assert body == DOC


@sqlite_only
@pytest.mark.gen_test
async def test_real_answers_fit_the_document(api):
    """Register, login, profile, a room, a message, an API key, a validation error and a
    401 each answer what the document says."""
    user = await api.register()
    conforms({"success": True, "data": user}, response_schema("/api/v1/auth/register",
                                                              "post", 201))
    token = user["access_token"]
    admin = (await api.admin())["access_token"]
    calls = [
        ("GET", "/api/v1/users/me", None, token, 200),
        ("POST", "/api/v1/rooms", {"name": "docs", "private": True}, token, 201),
        ("POST", "/api/v1/rooms/{name}/messages", {"data": {"text": "hi"}}, token, 201),
        ("GET", "/api/v1/rooms/{name}/messages", None, token, 200),
        ("POST", "/api/v1/admin/api-keys", {"name": "docs"}, admin, 201),
        ("GET", "/ws/stats", None, admin, 200),
        ("POST", "/ws/broadcast", {"message": "docs"}, admin, 200),
        ("POST", "/api/v1/auth/register", {"email": "x@"}, None, 400),
        ("GET", "/api/v1/users", None, token, 403),
        ("GET", "/api/v1/users/me", None, None, 401),
    ]
    for method, path, body, bearer, expected in calls:
        status, answer, _ = await api.call(method, path.replace("{name}", "docs"), body, bearer)
        assert status == expected, (path, answer)
        conforms(answer, response_schema(path, method.lower(), status))
    status, answer, _ = await api.call("POST", "/api/v1/auth/register", {"email": "x@"})
    assert set(answer["error"]["fields"]) == {"name", "email", "password"}
