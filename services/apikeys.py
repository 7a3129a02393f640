"""API keys: create, list and revoke them; authenticate a request that carries one.

A verified key is remembered for a few seconds, so a busy service's requests do not each read
the database. A key revoked over REST is forgotten at once on every node (a RevokeKey control
through the broker); one revoked from the command line (another process, no broker) is
refused by every node within the cache's TTL. When a key was last used is written behind,
at most once a minute per key.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from auth.apikeys import SCOPES, key_hash, looks_like_key, new_key
from auth.ratelimit import TokenBucket
from hub.messages import Control, RevokeKey
from models.apikey import ApiKey
from models.db import Runner, db, write_tx
from services import validation as v
from services.errors import (
    InvalidApiKey,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from services.principal import KeyPrincipal, Principal

__all__ = ["ApiKeyService", "create_key", "list_keys", "revoke_key", "parse_scopes", "scope_list",
           "blocking"]

log = logging.getLogger("auth")

CACHE_TTL = 5.0  # seconds a verified key skips the database; bounds a CLI revocation's reach
LAST_USED_EVERY = 60.0  # seconds between writes of one key's last use
MAX_CACHED = 10_000


def parse_scopes(value: Any) -> list[str]:
    """Returns a list of known scopes (a list, or the command line's comma-separated string),
    without repeats."""
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    return scope_list(value)


def scope_list(value: Any) -> list[str]:
    """Returns a JSON list of known scopes (what the REST API takes), without repeats."""
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise v.invalid("scopes", f"must be a non-empty list of: {', '.join(SCOPES)}")
    unknown = sorted(set(value) - set(SCOPES))
    if unknown:
        raise v.invalid("scopes", f"has unknown scope(s) {', '.join(unknown)}; known: "
                        f"{', '.join(SCOPES)}")
    return list(dict.fromkeys(value))


def key_name(value: Any) -> str:
    """Returns a key's name: 1-100 characters after trimming."""
    return v.text(value.strip() if isinstance(value, str) else value, "name", 1, 100)


# -- blocking operations (the command line, and the service through its pool) --------------

def create_key(name: Any, scopes: Any) -> dict[str, Any]:
    """Stores a new key's hash; returns {id, name, scopes, key} (the only time the key is seen)."""
    fields = v.Fields({"name": name, "scopes": scopes})
    name = fields.required("name", key_name)
    scope_list = fields.required("scopes", parse_scopes)
    fields.done()
    key = new_key()
    with write_tx():
        row = ApiKey.create(name=name, key_hash=key_hash(key), scopes=",".join(scope_list))
    return {"id": row.id, "name": row.name, "scopes": scope_list, "key": key}


def list_keys() -> list[dict[str, Any]]:
    """Returns every key's id, name, scopes, creation and last use, oldest first."""
    return [k.to_public() for k in ApiKey.select().order_by(ApiKey.id)]


def revoke_key(key_id: int) -> bool:
    """Deletes a key (and its idempotency records); False if there was no such key."""
    with write_tx():
        return ApiKey.delete().where(ApiKey.id == key_id).execute() > 0


def _lookup(digest: str) -> KeyPrincipal | None:
    row = ApiKey.get_or_none(ApiKey.key_hash == digest)
    if row is None:
        return None
    return KeyPrincipal(row.id, row.name, frozenset(row.scope_list))


def _touch(used: dict[int, float]) -> None:
    with write_tx():
        for key_id, at in used.items():
            when = dt.datetime.fromtimestamp(int(at), dt.UTC).replace(tzinfo=None)
            ApiKey.update(last_used_at=when).where(ApiKey.id == key_id).execute()


def _require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise PermissionDenied("admin access required")


class ApiKeyService:
    """Owns API keys on the server: REST management, authentication and per-key rate limits."""

    def __init__(self, run: Runner, control: Callable[[Control], int], rate: float,
                 ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.run = run
        self.control = control  # hub.control: every node applies it
        self.rate = rate
        self.ttl = ttl
        self._clock = clock
        # key hash -> (expires at, the key's principal), oldest first.
        self._cache: dict[str, tuple[float, KeyPrincipal]] = {}
        self._buckets: dict[int, TokenBucket] = {}
        self._used: dict[int, float] = {}  # key id -> last use not yet written (wall time)
        self._written: dict[int, float] = {}  # key id -> last use written (wall time)
        self._flushing = False

    async def create(self, actor: Principal, body: Any) -> dict[str, Any]:
        """POST /api/v1/admin/api-keys: a new key, returned this once (admins)."""
        _require_admin(actor)
        fields = v.Fields(body, ("name", "scopes"))
        name = fields.required("name", key_name)
        scopes = fields.optional("scopes", scope_list, list(SCOPES))
        fields.done()
        return await self.run(create_key, name, scopes)

    async def list(self, actor: Principal) -> list[dict[str, Any]]:
        """GET /api/v1/admin/api-keys (admins)."""
        _require_admin(actor)
        return await self.run(list_keys)

    async def revoke(self, actor: Principal, key_id: int) -> None:
        """DELETE /api/v1/admin/api-keys/{id}: refused from now on, on every node (admins)."""
        _require_admin(actor)
        if not await self.run(revoke_key, key_id):
            raise NotFound(f"no API key with id {key_id}")
        self.control(RevokeKey(key_id))

    def apply(self, control: Control) -> None:
        """Forgets a revoked key (a hub control observer, run on every node)."""
        if isinstance(control, RevokeKey):
            self._cache = {h: e for h, e in self._cache.items() if e[1].id != control.key_id}
            self._buckets.pop(control.key_id, None)

    async def authenticate(self, key: str | None) -> KeyPrincipal:
        """Returns the caller behind a key, or raises InvalidApiKey (401); RateLimited (429)
        past --server-api-rate requests per second for this key."""
        if not key or not looks_like_key(key):
            raise InvalidApiKey("a valid API key is required: send 'X-API-Key: <key>'")
        digest = key_hash(key)
        now = self._clock()
        entry = self._cache.get(digest)
        if entry is not None and entry[0] > now:
            principal = entry[1]
        else:
            found = await self.run(_lookup, digest)
            if found is None:
                self._cache.pop(digest, None)
                raise InvalidApiKey("unknown or revoked API key")
            principal = found
            self._remember(digest, principal, now)
        self._limit(principal)
        self._note_use(principal.id)
        return principal

    def _remember(self, digest: str, principal: KeyPrincipal, now: float) -> None:
        cache = self._cache
        cache.pop(digest, None)
        while len(cache) >= MAX_CACHED:
            del cache[next(iter(cache))]
        cache[digest] = (now + self.ttl, principal)

    def _limit(self, principal: KeyPrincipal) -> None:
        bucket = self._buckets.get(principal.id)
        if bucket is None:
            bucket = self._buckets[principal.id] = TokenBucket(self.rate, self.rate)
        if not bucket.take():
            raise RateLimited(f"more than {self.rate:g} requests per second with this API key", 1)

    def _note_use(self, key_id: int) -> None:
        now = time.time()
        if now - self._written.get(key_id, 0.0) < LAST_USED_EVERY:
            return
        self._used[key_id] = self._written[key_id] = now
        if not self._flushing:
            self._flushing = True
            IOLoop.current().add_callback(self._write_used)

    async def _write_used(self) -> None:
        used, self._used = self._used, {}
        try:
            await self.run(_touch, used)
        except Exception:
            log.exception("recording when %d API key(s) were last used failed", len(used))
        finally:
            self._flushing = False


def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """Runs a blocking key operation with a connection of its own (the command line)."""
    with db.connection_context():
        return fn(*args)
