"""A real Redis for the cluster tests: a unique key prefix per test, removed afterwards.

Tests skip when Redis is not reachable at TEST_REDIS_URL (default the machine's own), and fail
instead under CI=true. Keys are only ever deleted by prefix: never FLUSHDB on a shared Redis.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from conftest import IN_CI

__all__ = ["REDIS_URL", "require_redis", "new_prefix", "delete_prefix"]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Skips the test (fails it under CI=true) unless Redis answers PING."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1) as client:
            client.ping()
    except Exception as exc:
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def new_prefix() -> str:
    """Returns a key prefix no other test (or process) uses."""
    return f"test-{uuid.uuid4().hex[:10]}"


def delete_prefix(prefix: str) -> None:
    """Deletes every key under prefix."""
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def redis_prefix():
    """A fresh prefix on a reachable Redis, cleaned up after the test."""
    require_redis()
    prefix = new_prefix()
    yield prefix
    delete_prefix(prefix)
