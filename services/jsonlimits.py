"""Parses untrusted JSON with bounded nesting and only encodable (UTF-8) strings."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["loads", "JsonRejected", "MAX_DEPTH"]

MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class JsonRejected(ValueError):
    """The text is JSON the server will not accept (too deep, or lone surrogates)."""


def _deeper_than(value: Any, limit: int) -> bool:
    """Tells whether value nests lists and objects more than limit levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Returns the parsed JSON; raises ValueError if invalid, JsonRejected if refused.

    Nesting beyond max_depth is refused (the C parser would otherwise recurse until a
    RecursionError at ~1000 levels), and so are strings with lone UTF-16 surrogates, which
    cannot be stored in PostgreSQL or encoded into an event.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels") from None
    if text.count("[") + text.count("{") > max_depth and _deeper_than(value, max_depth):
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise JsonRejected("JSON strings must be valid Unicode (no lone surrogates)") from None
    return value
