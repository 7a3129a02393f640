"""API keys: their form, their hash and the scopes they can carry."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["PREFIX", "SCOPES", "new_key", "key_hash", "looks_like_key"]

PREFIX = "evk_"
# What a key may be allowed to do, one scope per server API route.
SCOPES = ("publish", "notify", "presence", "history", "disconnect")
_RANDOM_BYTES = 32


def new_key() -> str:
    """Returns a new key: the prefix and 32 random bytes, URL-safe base64 (43 characters)."""
    return PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def key_hash(key: str) -> str:
    """Returns the SHA-256 of a key, as stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(text: str) -> bool:
    """Tells whether text has a key's shape (prefix, then 43 URL-safe characters)."""
    body = text[len(PREFIX):]
    return (hmac.compare_digest(text[:len(PREFIX)], PREFIX) and len(body) == 43
            and all(c.isalnum() or c in "-_" for c in body))
