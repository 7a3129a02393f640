"""The Idempotency-Key promise of the server API: a retry publishes nothing again.

A notify or publish sent with `Idempotency-Key: <string>` claims the key (per API key) in the
database before anything is published: for notify in the very transaction that stores the
feed event in the outbox, for publish just before the message is published. A retry within
24 hours finds the claim, on any node and after a restart, and answers the first answer's
body without publishing. A retry that arrives while the first request is still under way
waits for its answer (a few seconds); if the first request's process died before it could
store the answer, the answer is rebuilt from what it published (the outbox row's offset,
the stored room message), and failing that the retry is told to come back (409).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from models.apikey import IdempotentRequest
from models.db import Runner, write_tx
from models.user import utcnow
from services.errors import Conflict, ValidationError

__all__ = ["Idempotency", "Claim", "request_hash", "check_key", "WINDOW"]

WINDOW = dt.timedelta(hours=24)
MAX_KEY = 255
WAIT_SECONDS = 5.0  # how long a retry waits for the first request's answer
WAIT_STEP = 0.1


class InProgress(Conflict):
    """The first request with this key has not finished (or died before answering)."""

    code = "idempotency_in_progress"

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress; "
                         "retry in a second")
        self.retry_after = 1


class KeyReused(Conflict):
    """The key was used for a different request."""

    code = "idempotency_key_reused"


def check_key(value: str | None) -> str | None:
    """Returns a usable Idempotency-Key header value (or None), else raises ValidationError."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_KEY or not value.isprintable():
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY} printable characters")
    return value


def request_hash(route: str, body: Any) -> str:
    """Returns the SHA-256 of a request (its route and canonical JSON body)."""
    text = json.dumps([route, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Claim:
    """What a claim found: nothing (go ahead and publish) or the earlier request."""

    __slots__ = ("earlier",)

    def __init__(self, earlier: IdempotentRequest | None) -> None:
        self.earlier = earlier


def claim(api_key: int, key: str, route: str, digest: str, ref: str) -> Claim:
    """Claims key for a request that will publish `ref` (blocking; inside the caller's
    transaction, which it joins). Returns the earlier claim if the key is taken."""
    now = utcnow()
    earlier = IdempotentRequest.get_or_none(
        (IdempotentRequest.api_key == api_key) & (IdempotentRequest.key == key))
    if earlier is not None and earlier.created_at > now - WINDOW:
        if earlier.route != route or earlier.request_hash != digest:
            raise KeyReused("this Idempotency-Key was already used for a different request")
        return Claim(earlier)
    if earlier is not None:  # expired: the key is free again
        earlier.delete_instance()
    IdempotentRequest.create(api_key=api_key, key=key, route=route, request_hash=digest,
                             ref=ref, created_at=now)
    return Claim(None)


def _store(api_key: int, key: str, answer: dict[str, Any]) -> None:
    with write_tx():
        IdempotentRequest.update(answer=json.dumps(answer)).where(
            (IdempotentRequest.api_key == api_key) & (IdempotentRequest.key == key)).execute()


def _answer(api_key: int, key: str) -> str | None:
    row = IdempotentRequest.get_or_none(
        (IdempotentRequest.api_key == api_key) & (IdempotentRequest.key == key))
    return row.answer if row is not None else None


def _purge(cutoff: dt.datetime) -> int:
    with write_tx():
        return IdempotentRequest.delete().where(IdempotentRequest.created_at < cutoff).execute()


class Idempotency:
    """Stores first answers and answers retries (see the module docstring)."""

    def __init__(self, run: Runner) -> None:
        self.run = run

    async def store(self, api_key: int, key: str, answer: dict[str, Any]) -> None:
        """Records the first request's answer for its retries."""
        await self.run(_store, api_key, key, answer)

    async def replay(self, earlier: IdempotentRequest,
                     rebuild: Callable[[str], Awaitable[dict[str, Any] | None]]) -> dict[str, Any]:
        """Returns the earlier request's answer: stored, awaited, or rebuilt from what it
        published (`rebuild(ref)`); InProgress (409) if none of them can be had yet."""
        answer = earlier.answer
        waited = 0.0
        while answer is None and waited < WAIT_SECONDS:
            await asyncio.sleep(WAIT_STEP)
            waited += WAIT_STEP
            answer = await self.run(_answer, earlier.api_key_id, earlier.key)
        if answer is not None:
            return json.loads(answer)
        rebuilt = await rebuild(earlier.ref)
        if rebuilt is None:
            raise InProgress()
        await self.store(earlier.api_key_id, earlier.key, rebuilt)
        return rebuilt

    async def purge(self) -> int:
        """Deletes claims older than the 24-hour window."""
        return await self.run(_purge, utcnow() - WINDOW)
