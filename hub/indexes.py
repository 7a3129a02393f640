"""The hub's connection indexes: buckets of clients by key (user, role, session, channel)."""

from __future__ import annotations

from hub.client import Client

__all__ = ["EMPTY", "discard"]

# The bucket an index lookup returns for a key nobody is under; never written to.
EMPTY: dict[str, Client] = {}


def discard(index: dict, key: object, client_id: str) -> None:
    """Removes a client from the bucket at key, and the bucket once it is empty."""
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(client_id, None)
        if not bucket:
            del index[key]
