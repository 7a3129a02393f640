"""Small builders for the OpenAPI document: references, envelopes, bodies, parameters."""

from __future__ import annotations

from typing import Any

__all__ = ["ref", "trimmed_text", "envelope", "json_content", "success", "body", "path_param",
           "query_param", "header_param", "operation", "link", "BEARER", "API_KEY", "PUBLIC",
           "ERROR_RESPONSES", "obj", "string", "integer", "nullable"]

Schema = dict[str, Any]

# Security requirements: a user's access token; an API key in either header; nothing.
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
API_KEY: list[dict[str, list[str]]] = [{"apiKey": []}, {"apiKeyAuthorization": []}]
PUBLIC: list[dict[str, list[str]]] = []

# The components/responses entry answering each error status (components.py defines them).
ERROR_RESPONSES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                   409: "Conflict", 413: "PayloadTooLarge", 429: "RateLimited",
                   503: "Unavailable"}


def ref(name: str, kind: str = "schemas") -> Schema:
    """Returns a reference to components/<kind>/<name>."""
    return {"$ref": f"#/components/{kind}/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] | None = None,
        description: str = "", closed: bool = True) -> Schema:
    """Returns an object schema; every property is required unless `required` says which."""
    schema: Schema = {"type": "object", "properties": properties,
                      "required": list(properties if required is None else required)}
    if description:
        schema["description"] = description
    if closed:  # an answer with a field the document does not name fails the fuzzer's check
        schema["additionalProperties"] = False
    return schema


def string(description: str = "", **constraints: Any) -> Schema:
    """Returns a string schema."""
    return {"type": "string", **({"description": description} if description else {}),
            **constraints}


# services/validation.py text() and non_empty(): U+0000 is refused (PostgreSQL cannot store it).
NO_NUL = "^[^\\u0000]*$"


def text(description: str = "", **constraints: Any) -> Schema:
    """Returns a schema of a string the server takes as text: any characters but NUL."""
    return string(description, pattern=NO_NUL, **constraints)


# What Python's str.strip() removes (str.isspace()), as a regex class body.
_SPACE = ("\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
          "\\u2028\\u2029\\u202f\\u205f\\u3000")


def trimmed_text(description: str, longest: int, forbidden: str = "") -> Schema:
    """Returns a string schema of what a validator accepts after trimming: 1-longest
    characters once surrounding whitespace is removed, none of `forbidden` (a regex class body)
    inside."""
    edge = f"[^{_SPACE}{forbidden}]"
    inner = f"[^{forbidden}]" if forbidden else "[\\s\\S]"
    pattern = f"^[{_SPACE}]*{edge}(?:{inner}{{0,{longest - 2}}}{edge})?[{_SPACE}]*$"
    return string(description, pattern=pattern)


def integer(description: str = "", **constraints: Any) -> Schema:
    """Returns an integer schema."""
    return {"type": "integer", **({"description": description} if description else {}),
            **constraints}


def nullable(schema: Schema) -> Schema:
    """Returns schema that also admits null (OpenAPI 3.1: a type list)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def envelope(data: Schema) -> Schema:
    """Returns the success envelope {"success": true, "data": <data>}."""
    return obj({"success": {"const": True}, "data": data})


def json_content(schema: Schema, example: Any = None) -> dict[str, Any]:
    """Returns an application/json content map with an optional example."""
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def success(description: str, data: Schema, *, example: Any = None, enveloped: bool = True,
            links: dict[str, Any] | None = None) -> dict[str, Any]:
    """Returns a success response: the envelope around data (or data itself)."""
    schema = envelope(data) if enveloped else data
    if example is not None and enveloped:
        example = {"success": True, "data": example}
    response: dict[str, Any] = {"description": description,
                                "content": json_content(schema, example)}
    if links:
        response["links"] = links
    return response


def body(schema: Schema, example: Any, description: str = "") -> dict[str, Any]:
    """Returns a required JSON request body."""
    request: dict[str, Any] = {"required": True, "content": json_content(schema, example)}
    if description:
        request["description"] = description
    return request


def _param(where: str, name: str, schema: Schema, description: str, required: bool,
           example: Any) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": required,
                             "description": description, "schema": schema}
    if example is not None:
        param["example"] = example
    return param


def path_param(name: str, schema: Schema, description: str, example: Any = None) -> dict:
    """Returns a path parameter (always required)."""
    return _param("path", name, schema, description, True, example)


def query_param(name: str, schema: Schema, description: str, required: bool = False,
                example: Any = None) -> dict:
    """Returns a query parameter."""
    return _param("query", name, schema, description, required, example)


def header_param(name: str, schema: Schema, description: str, example: Any = None) -> dict:
    """Returns an optional header parameter."""
    return _param("header", name, schema, description, False, example)


def link(operation_id: str, description: str, parameters: dict[str, str] | None = None,
         request_body: Any = None) -> dict[str, Any]:
    """Returns an OpenAPI link to another operation, fed from this request and response."""
    result: dict[str, Any] = {"operationId": operation_id, "description": description}
    if parameters:
        result["parameters"] = parameters
    if request_body is not None:
        result["requestBody"] = request_body
    return result


def operation(operation_id: str, tag: str, summary: str, description: str, *,
              security: list[dict[str, list[str]]], responses: dict[str, Any],
              errors: tuple[int, ...], parameters: list[dict] | None = None,
              request_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Returns one operation: its success responses plus a reference per error status."""
    op: dict[str, Any] = {"operationId": operation_id, "tags": [tag], "summary": summary,
                          "description": description, "security": security}
    if parameters:
        op["parameters"] = parameters
    if request_body is not None:
        op["requestBody"] = request_body
    op["responses"] = {**responses, **{str(status): ref(ERROR_RESPONSES[status], "responses")
                                       for status in sorted(errors)}}
    return op
