"""Delivers webhook rows to --webhook-url: claim, POST, delete; at least once, in order per key.

Like the outbox relay, it reads committed rows: when kicked after rows were written, and every
second. A round claims, in one serialised transaction (BEGIN IMMEDIATE on SQLite, which
every process sharing the file respects; an advisory lock on PostgreSQL, shared by every
node), the oldest rows of up to PARALLEL_KEYS order keys whose oldest row is due and
unclaimed: `claimed_by` = this node, `claimed_until` = now + LEASE_SECONDS. Only the oldest
row of a key can start a claim and its successors are claimed with it, so a later event of a
user or channel never overtakes an earlier one, and no two nodes deliver one key at once.
Each key's rows are POSTed one after another; a 2xx deletes the row, anything else ends the
chain: the row is tried again after a backoff with full jitter (from 1 s, doubling, capped
at --webhook-retry-cap) and its successors wait. A row still failing --webhook-max-age after
it was recorded is dropped, with a log line and a count. A node that dies mid-chain leaves
its claims to expire; its rows are then claimed again (delivered at least once).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import peewee

from models.db import Runner, db, write_tx
from services.hookclient import Failures, HookClient, HookRequestFailed, HookTimeout

__all__ = ["WebhookRelay", "Claimed", "PARALLEL_KEYS", "LEASE_SECONDS", "TIMEOUT_SECONDS"]

log = logging.getLogger("webhooks")

POLL_SECONDS = 1.0
PARALLEL_KEYS = 16  # keys delivered at once by one node
CHAIN = 50  # rows of one key claimed together
LEASE_SECONDS = 30.0
TIMEOUT_SECONDS = 10.0  # for one webhook request
ADVISORY_LOCK = 0x57EB_400C  # PostgreSQL: serialises the claims of every node


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this node claimed: what to POST and what a failure needs."""

    id: int
    key: str
    event_id: str
    body: str
    attempts: int
    created_at: float


class WebhookRelay:
    """Claims and delivers webhook rows on the IOLoop; one per application."""

    def __init__(self, run: Runner, client: HookClient, url: str, node_id: str,
                 retry_cap: float, max_age: float) -> None:
        self.run = run
        self.client = client
        self.url = url
        self.node_id = node_id
        self.retry_cap = retry_cap
        self.max_age = max_age
        self.failures = Failures(log)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._chains: set[asyncio.Task] = set()
        self.stopped = False
        # Plain numbers for the metrics and /ws/stats: attempts by outcome since start, and
        # the table as the last round saw it (every node sees the whole cluster's).
        self.delivered = self.failed = self.dropped = 0
        self.queued = 0
        self.oldest_age = 0.0

    def kick(self) -> None:
        """Runs a claim round soon (rows were just committed)."""
        self._wake.set()

    async def start(self, release_all: bool = False) -> None:
        """Starts claiming; `release_all` (a single node) first frees claims a crashed
        earlier process of this database left behind, instead of waiting out their lease."""
        if release_all:
            await self.run(_release_all)
        self._loop_task = asyncio.ensure_future(self._loop())

    async def close(self, grace: float = 2.0) -> None:
        """Stops claiming; chains in flight end after their current request (or are cut off
        after `grace`, their claims then expire)."""
        self.stopped = True
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.wait([self._loop_task], timeout=grace)
        if self._chains:
            _, late = await asyncio.wait(self._chains, timeout=grace)
            for task in late:
                task.cancel()

    async def _loop(self) -> None:
        while not self.stopped:
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()
            if self.stopped:
                return
            try:
                await self._round()
            except Exception as exc:
                self.failures(f"round {type(exc).__name__}",
                              "claiming webhooks failed: %r; retrying", exc)
                await asyncio.sleep(POLL_SECONDS)

    async def _round(self) -> None:
        free = PARALLEL_KEYS - len(self._chains)
        now = time.time()
        chains, count, oldest = await self.run(_claim, self.node_id, now, free)
        self.queued = count
        self.oldest_age = max(0.0, now - oldest) if oldest is not None else 0.0
        for rows in chains:
            task = asyncio.ensure_future(self._deliver(rows, now + LEASE_SECONDS))
            self._chains.add(task)
            task.add_done_callback(self._chain_done)

    def _chain_done(self, task: asyncio.Task) -> None:
        self._chains.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivering webhooks failed", exc_info=task.exception())
        self._wake.set()

    async def _deliver(self, rows: list[Claimed], lease_end: float) -> None:
        """POSTs one key's claimed rows in order until one fails; then settles them."""
        delivered: list[int] = []
        failed: tuple[Claimed, str] | None = None
        for i, row in enumerate(rows):
            if self.stopped:
                break
            if lease_end - time.time() < TIMEOUT_SECONDS + 5:  # a slow application
                lease_end = time.time() + LEASE_SECONDS
                if not await self.run(_renew, self.node_id, [r.id for r in rows[i:]], lease_end):
                    break  # the lease ran out meanwhile: another node may have the key
            error = await self._post(row)
            if error is None:
                delivered.append(row.id)
                self.delivered += 1
                continue
            failed = (row, error)
            break
        done = len(delivered) + (failed is not None)
        retry = self._retry(*failed) if failed is not None else None
        while True:
            try:
                await self.run(_settle, self.node_id, delivered, retry,
                               [r.id for r in rows[done:]])
                return
            except Exception as exc:  # the database is away: the claims hold for a while
                self.failures("settle", "storing webhook outcomes failed: %r; retrying", exc)
                await asyncio.sleep(1.0)

    async def _post(self, row: Claimed) -> str | None:
        """POSTs one row; returns None on a 2xx, else why it failed."""
        try:
            status, _ = await self.client.post(self.url, row.body.encode(), TIMEOUT_SECONDS)
        except HookTimeout:
            error = f"no answer within {TIMEOUT_SECONDS:g} s"
        except HookRequestFailed as exc:
            error = f"request failed ({exc})"
        else:
            if 200 <= status < 300:
                return None
            error = f"answered HTTP {status}"
        self.failures(error, "webhook delivery to %s failed: %s; retrying with backoff",
                      self.url, error)
        return error

    def _retry(self, row: Claimed, error: str) -> tuple[int, float | None, str]:
        """Returns (row id, when to try again or None to drop it, error)."""
        now = time.time()
        if now - row.created_at >= self.max_age:
            self.dropped += 1
            log.warning("dropping webhook %s (%s) after %d attempts over %.0f s: %s",
                        row.event_id, row.key, row.attempts + 1, now - row.created_at, error)
            return row.id, None, error
        self.failed += 1
        delay = random.uniform(0, min(self.retry_cap, 2.0 ** row.attempts))
        return row.id, now + delay, error


# -- statements (pool threads) -----------------------------------------------------------


def _param() -> str:
    return db.obj.param


def _claim(node: str, now: float, keys: int) -> tuple[list[list[Claimed]], int, float | None]:
    """Claims the due chains of up to `keys` order keys; returns them with the table's row
    count and oldest record time."""
    p = _param()
    with write_tx():
        count, oldest = db.execute_sql("SELECT COUNT(*), MIN(created_at) FROM webhooks").fetchone()
        if keys <= 0 or not count:
            return [], count, oldest
        if not isinstance(db.obj, peewee.SqliteDatabase):
            db.execute_sql(f"SELECT pg_advisory_xact_lock({p})", (ADVISORY_LOCK,))
        rows = db.execute_sql(
            "SELECT id, order_key, event_id, body, attempts, created_at FROM ("
            " SELECT w.*, ROW_NUMBER() OVER (PARTITION BY w.order_key ORDER BY w.id) AS n"
            " FROM webhooks w WHERE w.order_key IN ("
            "  SELECT h.order_key FROM webhooks h"
            "  WHERE h.id IN (SELECT MIN(id) FROM webhooks GROUP BY order_key)"
            f"  AND h.next_at <= {p} AND (h.claimed_until IS NULL OR h.claimed_until < {p})"
            f"  ORDER BY h.id LIMIT {p})"
            f") ranked WHERE n <= {p} ORDER BY id", (now, now, keys, CHAIN)).fetchall()
        if not rows:
            return [], count, oldest
        ids = [r[0] for r in rows]
        marks = ", ".join([p] * len(ids))
        db.execute_sql(f"UPDATE webhooks SET claimed_by = {p}, claimed_until = {p} "
                       f"WHERE id IN ({marks})", [node, now + LEASE_SECONDS, *ids])
    chains: dict[str, list[Claimed]] = {}
    for id_, key, event_id, body, attempts, created_at in rows:
        chains.setdefault(key, []).append(Claimed(id_, key, event_id, body, attempts,
                                                  created_at))
    return list(chains.values()), count, oldest


def _renew(node: str, ids: list[int], until: float) -> bool:
    """Extends this node's claim on ids; False if it no longer holds all of them."""
    p = _param()
    marks = ", ".join([p] * len(ids))
    with write_tx():
        cursor = db.execute_sql(
            f"UPDATE webhooks SET claimed_until = {p} WHERE claimed_by = {p} "
            f"AND claimed_until >= {p} AND id IN ({marks})", [until, node, time.time(), *ids])
        return cursor.rowcount == len(ids)


def _settle(node: str, delivered: list[int], retry: tuple[int, float | None, str] | None,
            release: list[int]) -> None:
    """Deletes delivered rows, reschedules (or drops) the failed one and releases the rest."""
    p = _param()
    with write_tx():
        if delivered:
            marks = ", ".join([p] * len(delivered))
            db.execute_sql(f"DELETE FROM webhooks WHERE id IN ({marks})", delivered)
        if retry is not None and retry[1] is None:
            db.execute_sql(f"DELETE FROM webhooks WHERE id = {p}", [retry[0]])
        elif retry is not None:
            db.execute_sql(
                f"UPDATE webhooks SET attempts = attempts + 1, next_at = {p}, "
                f"last_error = {p}, claimed_by = NULL, claimed_until = NULL WHERE id = {p}",
                [retry[1], retry[2][:200], retry[0]])
        if release:
            marks = ", ".join([p] * len(release))
            db.execute_sql(f"UPDATE webhooks SET claimed_by = NULL, claimed_until = NULL "
                           f"WHERE claimed_by = {p} AND id IN ({marks})", [node, *release])


def _release_all() -> Any:
    """Frees every claim (a single node starting: no other node can hold one)."""
    with write_tx():
        return db.execute_sql("UPDATE webhooks SET claimed_by = NULL, claimed_until = NULL "
                              "WHERE claimed_by IS NOT NULL")
