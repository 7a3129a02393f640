"""Schemathesis hooks for `make fuzz-api`: who the fuzzer is, and what it must leave alone.

Loaded by schemathesis itself (SCHEMATHESIS_HOOKS=proof.fuzz_hooks) in the process that
proof/fuzz_api.py starts; the running server and the fuzzer's credentials come in through
FUZZ_* environment variables.

- Operations secured by an API key get the fuzzer's key (`X-API-Key`).
- Bearer operations get an admin's access token, except those that spend or rewrite the
  caller's own session or account (logout, password change, profile edit): they get a token of
  a throwaway user registered for them, so the admin's session survives the whole run.
- A request that already carries `Authorization` (a link passing on the token of the session
  it created, or a negative case sending a bad one) keeps it.
- Two cases are skipped, both of which would only cut the fuzzer's own branch: revoking the
  fuzzer's API key, and an admin editing or deleting the fuzzer's admin account.
- One failure is not one: after "create a room", "add a member" with a generated user id that
  no user has answers 404 naming the user (documented), which schemathesis's "created resource
  not found" check (ST302) reads as the room missing. A 404 naming the room still fails.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.request
from typing import Any

import schemathesis

__all__ = ["FuzzerAuth", "spare_the_fuzzer", "missing_user_not_missing_room"]

BASE_URL = os.environ.get("FUZZ_BASE_URL", "http://127.0.0.1:8080")
ADMIN_TOKEN = os.environ.get("FUZZ_ADMIN_TOKEN", "")
ADMIN_ID = int(os.environ.get("FUZZ_ADMIN_ID", "0"))
API_KEY = os.environ.get("FUZZ_API_KEY", "")
API_KEY_ID = int(os.environ.get("FUZZ_API_KEY_ID", "0"))
# Operations that would spend or rewrite the caller's own session or account.
SELF_SERVICE = {"logout", "changePassword", "updateMe"}


def _post(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Sends a JSON POST to the server and returns the parsed answer (raises on non-2xx)."""
    request = urllib.request.Request(BASE_URL + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def throwaway_token() -> str:
    """Registers a fresh user with a random password and returns its access token."""
    tag = secrets.token_hex(6)
    data = _post("/api/v1/auth/register", {"name": f"Fuzz {tag}", "password": secrets.token_hex(16),
                                           "email": f"fuzz-{tag}@example.com"})
    return data["data"]["access_token"]


def _security(case: Any) -> list[dict[str, Any]]:
    return case.operation.definition.raw.get("security", [])


def _operation_id(case: Any) -> str:
    return case.operation.definition.raw.get("operationId", "")


@schemathesis.auth(refresh_interval=None, retry_on=[])
class FuzzerAuth:
    """Gives each case the credential its operation takes (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._self_service: dict[str, str] = {}

    def get(self, case: Any, context: Any) -> tuple[str, str] | None:
        schemes = {name for requirement in _security(case) for name in requirement}
        if "apiKey" in schemes:
            return "X-API-Key", API_KEY
        if "bearerAuth" not in schemes or {} in _security(case):
            return None  # public, or optional (/metrics, which loopback reads without one)
        operation = _operation_id(case)
        if operation not in SELF_SERVICE:
            return "Authorization", f"Bearer {ADMIN_TOKEN}"
        with self._lock:
            # logout spends its session: a new user each time; the others keep theirs.
            if operation == "logout" or operation not in self._self_service:
                self._self_service[operation] = throwaway_token()
            return "Authorization", f"Bearer {self._self_service[operation]}"

    def set(self, case: Any, data: tuple[str, str], context: Any) -> None:
        name, value = data
        if case.headers is None:
            case.headers = {}
        if name == "Authorization" and any(k.lower() == "authorization" for k in case.headers):
            return  # a link's token or a deliberately bad one
        case.headers[name] = value


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Skips revoking the fuzzer's own API key and an admin rewriting the fuzzer's account."""
    return spare_the_fuzzer(_operation_id(case), case.path_parameters or {})


def spare_the_fuzzer(operation: str, path: dict[str, Any]) -> bool:
    """Returns False for the cases that would only lock the fuzzer out of the server."""
    if operation == "revokeApiKey":
        return str(path.get("id")) != str(API_KEY_ID)
    if operation in ("updateUser", "deleteUser", "changeRole"):
        return str(path.get("id")) != str(ADMIN_ID)
    return True


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Drops ST302 on addMember when the 404 names the body's user (see the docstring)."""
    if getattr(failure, "code", "") != "ST302" or _operation_id(case) != "addMember":
        return True
    return not missing_user_not_missing_room(response.text)


def missing_user_not_missing_room(answer: str) -> bool:
    """Returns True when a 404 answer says a user, not the room, was not found."""
    try:
        message = json.loads(answer)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(message, str) and message.startswith("user ") and message.endswith(
        " not found")
