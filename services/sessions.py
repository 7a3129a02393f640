"""Verified sessions for a few seconds, so an authenticated request skips the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from auth.jwt import Claims
from hub.messages import CloseSession, CloseUser, Control, SetRole
from services.principal import Principal

__all__ = ["SessionCache", "DEFAULT_TTL", "DEFAULT_SIZE"]

DEFAULT_TTL = 5.0
DEFAULT_SIZE = 50_000


class SessionCache:
    """Session id -> the user, name, role and token version its last database check found.

    A hit needs the token's user and version to match the entry, and the entry to be younger
    than `ttl` seconds. Every revocation clears what it affects through the hub's controls,
    which the broker applies on every node (CloseSession: logout, a reused refresh token;
    CloseUser: password change, account deletion; SetRole: role change), so a revoked
    session is refused at once; the TTL bounds how long a node could miss one (a control lost
    with the broker) and how long a renamed user keeps the old name on new connections.
    At most `size` sessions are kept, oldest first out. Concurrent misses for one session
    (a user's tabs reconnecting together) share one database check.
    """

    def __init__(self, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        # session id -> (expires at, the principal found), oldest first.
        self._entries: dict[str, tuple[float, Principal]] = {}
        # Bumped by every invalidation: a database check that began before one must not
        # store what it read (it may predate the revocation).
        self.generation = 0
        # session id -> (generation when it began, its outcome) of a database check under way.
        self._pending: dict[str, tuple[int, asyncio.Future[Principal | None]]] = {}
        self.hits = 0
        self.misses = 0

    async def lookup(self, claims: Claims,
                     check: Callable[[Claims], Awaitable[Principal]]) -> Principal:
        """Returns the caller for verified claims: from the cache, from a check of the same
        session already under way, or from check(claims) (the database), which may raise."""
        principal = self.get(claims)
        if principal is not None or self.ttl <= 0:
            return principal or await check(claims)
        generation = self.generation
        pending = self._pending.get(claims.sid)
        if pending is not None and pending[0] == generation:
            found = await pending[1]
            # Shared only if it is this token's user and version, and nothing was revoked
            # meanwhile; otherwise (or if that check failed) this token is checked on its own.
            if (found is not None and generation == self.generation and found.id == claims.user_id
                    and found.token_version == claims.ver):
                return (found if found.expires_at == claims.exp
                        else replace(found, expires_at=claims.exp))
        return await self._check(claims, check)

    async def _check(self, claims: Claims,
                     check: Callable[[Claims], Awaitable[Principal]]) -> Principal:
        generation = self.generation
        outcome: asyncio.Future[Principal | None] | None = None
        if claims.sid not in self._pending:
            outcome = asyncio.get_running_loop().create_future()
            self._pending[claims.sid] = (generation, outcome)
        principal = None
        try:
            principal = await check(claims)
        finally:
            if outcome is not None:
                del self._pending[claims.sid]
                outcome.set_result(principal)
        self.put(principal, generation)
        return principal

    def get(self, claims: Claims) -> Principal | None:
        """Returns the caller for verified claims if their session was checked lately."""
        entry = self._entries.get(claims.sid)
        if entry is None or entry[0] <= self._clock():
            self.misses += 1
            return None
        principal = entry[1]
        if principal.id != claims.user_id or principal.token_version != claims.ver:
            self.misses += 1
            return None
        self.hits += 1
        if principal.expires_at != claims.exp:  # another token of the same session
            principal = replace(principal, expires_at=claims.exp)
        return principal

    def put(self, principal: Principal, generation: int) -> None:
        """Stores what a database check found, unless an invalidation came since it began."""
        if self.ttl <= 0 or generation != self.generation:
            return
        entries = self._entries
        entries.pop(principal.session_id, None)
        while len(entries) >= self.size:
            del entries[next(iter(entries))]
        entries[principal.session_id] = (self._clock() + self.ttl, principal)

    def forget_session(self, session_id: str) -> None:
        """Drops one session."""
        self.generation += 1
        self._entries.pop(session_id, None)

    def forget_user(self, user_id: int) -> None:
        """Drops every session of one user (a scan: roles and passwords change rarely)."""
        self.generation += 1
        entries = self._entries
        for sid in [sid for sid, entry in entries.items() if entry[1].id == user_id]:
            del entries[sid]

    def apply(self, control: Control) -> None:
        """Clears what a registry change revokes; the hub calls it for every control."""
        match control:
            case CloseSession(session_id):
                self.forget_session(session_id)
            case CloseUser(user_id) | SetRole(user_id):
                self.forget_user(user_id)

    def __len__(self) -> int:
        return len(self._entries)
