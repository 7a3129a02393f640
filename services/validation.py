"""Validates and normalises the fields of user-supplied bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from services.errors import ValidationError

__all__ = ["require_object", "reject_unknown", "name", "email", "password", "age", "role", "text",
           "query_number"]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")


def require_object(body: Any) -> Mapping[str, Any]:
    """Returns body if it is a JSON object, else raises ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    return body


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuses fields outside `allowed`, so role, id or hashes are never mass-assigned."""
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise ValidationError(f"unknown or read-only field(s): {', '.join(extra)}")


def text(value: Any, field: str, low: int, high: int) -> str:
    """Returns value if it is a string of low..high characters."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string")
    if not low <= len(value) <= high:
        raise ValidationError(f"{field} must be {low}-{high} characters long")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def name(value: Any) -> str:
    """Returns a valid display name (1-100 characters after trimming, no control characters)."""
    value = text(value.strip() if isinstance(value, str) else value, "name", 1, 100)
    if _CONTROL.search(value):
        raise ValidationError("name must not contain control characters")
    return value


def email(value: Any) -> str:
    """Returns a syntactically valid email, lower-cased."""
    if not isinstance(value, str):
        raise ValidationError("email must be a string")
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValidationError("email must be a valid address like name@example.com")
    return value


def password(value: Any, field: str = "password") -> str:
    """Returns a password of 8-128 characters."""
    return text(value, field, 8, 128)


def age(value: Any) -> int | None:
    """Returns an age of 0-150 or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("age must be a whole number")
    if not 0 <= value <= 150:
        raise ValidationError("age must be between 0 and 150")
    return value


def role(value: Any) -> str:
    """Returns one of the known roles."""
    from models.user import ROLES

    if value not in ROLES:
        raise ValidationError(f"role must be one of: {', '.join(ROLES)}")
    return str(value)


def query_number(value: str | None, name: str, default: int, high: int) -> int:
    """Returns a query parameter as a whole number in 1..high, or default when absent."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number") from None
    if not 1 <= number <= high:
        raise ValidationError(f"{name} must be between 1 and {high}")
    return number
