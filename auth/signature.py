"""Signs hook and webhook requests the way Stripe signs its webhooks, and keeps the secret.

Every request carries `X-Events-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC
taken with the hook secret over `<t>.<body>`. The application recomputes it and compares in
constant time, and refuses a `t` too far from its clock (a replayed request).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time

__all__ = ["HEADER", "TOLERANCE_SECONDS", "sign", "verify", "load_or_create_hook_secret"]

log = logging.getLogger("auth")

HEADER = "X-Events-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """Returns the signature header's value for body, signed at timestamp (default now)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance: float = TOLERANCE_SECONDS,
           now: float | None = None) -> bool:
    """Returns whether header is a valid signature of body made within tolerance seconds."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(secret, body, t).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def load_or_create_hook_secret(data_dir: str) -> str:
    """Reads the secret from <data_dir>/hook_secret, creating it (mode 0600) the first time.

    Written to a temporary file and linked into place, so a process starting beside another
    of the same data dir reads either no file or the whole secret.
    """
    path = os.path.join(data_dir, "hook_secret")
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(data_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(temporary, path)
        log.warning("generated a hook secret in %s (mode 0600); the application verifies "
                    "requests with it (or set HOOK_SECRET)", path)
    except FileExistsError:  # another process of this data dir made it meanwhile
        pass
    finally:
        os.unlink(temporary)
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()
