"""Validates and normalises the fields of user-supplied bodies.

Each validator returns the clean value or raises a ValidationError naming its field. A
request body goes through `Fields`, which runs every validator, records what is wrong with
each field (a missing one is "required") and raises one ValidationError with all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from services.errors import ValidationError

__all__ = ["Fields", "REQUIRED", "UNKNOWN", "MAX_ID", "invalid", "require_object", "name",
           "email", "password", "age", "role", "text", "non_empty", "boolean", "positive_int",
           "choice", "query_number", "whole", "NUL_REFUSED"]

T = TypeVar("T")

REQUIRED = "required"
UNKNOWN = "unknown or read-only field"
# The largest id a route accepts (`[0-9]{1,18}`); also what a 64-bit database column holds.
MAX_ID = 999_999_999_999_999_999

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+\Z")


def invalid(field: str, problem: str) -> ValidationError:
    """Returns the error for one bad field: `<field> <problem>`, with fields={field: problem}."""
    return ValidationError(f"{field} {problem}", {field: problem})


def summary(errors: Mapping[str, str]) -> str:
    """Returns one sentence naming every invalid field (`name is required; age must be ...`)."""
    parts = [f"{f} is required" if p == REQUIRED else f"{f} {p}"
             for f, p in errors.items() if p != UNKNOWN]
    unknown = [f for f, p in errors.items() if p == UNKNOWN]
    if unknown:
        parts.append(f"unknown or read-only field(s): {', '.join(unknown)}")
    return "; ".join(parts)


def require_object(body: Any) -> Mapping[str, Any]:
    """Returns body if it is a JSON object, else raises ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    return body


class Fields:
    """Checks every field of one body and raises one ValidationError naming all bad ones.

    Fields outside `allowed` are refused, so role, id or hashes are never mass-assigned.
    """

    def __init__(self, body: Any, allowed: Iterable[str] | None = None) -> None:
        self.body = require_object(body)
        self.errors: dict[str, str] = {}
        if allowed is not None:
            for field in sorted(set(self.body) - set(allowed)):
                self.errors[field] = UNKNOWN

    def required(self, field: str, validate: Callable[[Any], T]) -> T:
        """Returns the field's clean value; a missing or null field is recorded as required."""
        value = self.body.get(field)
        if value is None:
            self.errors[field] = REQUIRED
            return None  # type: ignore[return-value]  # done() raises before it is used
        return self.check(field, validate, value)

    def optional(self, field: str, validate: Callable[[Any], T], default: Any = None) -> T:
        """Returns the field's clean value, or default when it is absent."""
        if field not in self.body:
            return default
        return self.check(field, validate, self.body[field])

    def check(self, field: str, validate: Callable[[Any], T], value: Any) -> T:
        """Returns validate(value), recording its complaint under field if it has one."""
        try:
            return validate(value)
        except ValidationError as exc:
            self.errors[field] = next(iter(exc.fields.values()), None) or exc.message
            return None  # type: ignore[return-value]  # done() raises before it is used

    def done(self) -> None:
        """Raises one ValidationError with every recorded field, if any."""
        if self.errors:
            raise ValidationError(summary(self.errors), dict(self.errors))


# PostgreSQL's text cannot hold U+0000 (SQLite's can): a string with one is refused on both,
# rather than stored on one database and a server error on the other.
NUL_REFUSED = "must not contain NUL characters"


def text(value: Any, field: str, low: int, high: int) -> str:
    """Returns value if it is a string of low..high characters without NUL."""
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if not low <= len(value) <= high:
        raise invalid(field, f"must be {low}-{high} characters long")
    if "\x00" in value:
        raise invalid(field, NUL_REFUSED)
    return value


def non_empty(field: str) -> Callable[[Any], str]:
    """Returns a validator of a non-empty string without NUL (a token, a password to check)."""
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise invalid(field, "must be a non-empty string")
        if "\x00" in value:
            raise invalid(field, NUL_REFUSED)
        return value
    return check


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def name(value: Any) -> str:
    """Returns a valid display name (1-100 characters after trimming, no control characters)."""
    value = value.strip() if isinstance(value, str) else value
    if isinstance(value, str) and _CONTROL.search(value):  # NUL too: the broader message
        raise invalid("name", "must not contain control characters")
    return text(value, "name", 1, 100)


def email(value: Any) -> str:
    """Returns a syntactically valid email, lower-cased."""
    if not isinstance(value, str):
        raise invalid("email", "must be a string")
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise invalid("email", "must be a valid address like name@example.com")
    return value


def password(value: Any, field: str = "password") -> str:
    """Returns a password of 8-128 characters."""
    return text(value, field, 8, 128)


def whole(value: Any) -> int | None:
    """Returns value as an int if it is a whole JSON number (`25` or `25.0`), else None.

    JSON does not tell 25 from 25.0, and JSON Schema's `integer` admits both; true and false
    are not numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def age(value: Any) -> int | None:
    """Returns an age of 0-150 or None."""
    if value is None:
        return None
    number = whole(value)
    if number is None:
        raise invalid("age", "must be a whole number")
    if not 0 <= number <= 150:
        raise invalid("age", "must be between 0 and 150")
    return number


def role(value: Any) -> str:
    """Returns one of the known roles."""
    from models.user import ROLES

    if value not in ROLES:
        raise invalid("role", f"must be one of: {', '.join(ROLES)}")
    return str(value)


def boolean(field: str) -> Callable[[Any], bool]:
    """Returns a validator of true or false."""
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise invalid(field, "must be true or false")
        return value
    return check


def positive_int(field: str) -> Callable[[Any], int]:
    """Returns a validator of an id: a whole number from 1 to MAX_ID."""
    def check(value: Any) -> int:
        number = whole(value)
        if number is None or number < 1:
            raise invalid(field, "must be a positive whole number")
        if number > MAX_ID:
            raise invalid(field, f"must be at most {MAX_ID}")
        return number
    return check


def choice(field: str, options: Iterable[str]) -> Callable[[Any], str]:
    """Returns a validator of one of options."""
    allowed = tuple(options)

    def check(value: Any) -> str:
        if value not in allowed:
            raise invalid(field, f"must be one of: {', '.join(allowed)}")
        return str(value)
    return check


def query_number(value: str | None, name: str, default: int, high: int) -> int:
    """Returns a query parameter as a whole number in 1..high, or default when absent
    (`?limit=` with no value is not absent: it is not a number)."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(name, "must be a whole number") from None
    if not 1 <= number <= high:
        raise invalid(name, f"must be between 1 and {high}")
    return number
