"""Users an identity provider signs in: a local record per `sub`, its role from the token.

The first request with a provider's token (a socket or a REST call) creates a local user
marked external: no password (it cannot log in over REST), the name and email claims if
present, the role from the role claim (`admin` or `user`; anything else, `superadmin`
included, is `user`: a provider's token never grants superadmin). A later token whose role
differs changes it with the consequences of any role change: user.role.changed to the user
and the admins, open sockets re-targeted at once. A user seen in the last few seconds skips
the database (the session cache's TTL); deletion and role changes clear that at once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import peewee

from hub import feed
from hub.messages import CloseUser, Control, SetRole
from models.db import Runner, db, write_tx
from models.user import User, rfc3339, utcnow
from services import validation as v
from services.errors import ValidationError
from services.notifier import Notifier
from services.outbox import Relay
from services.principal import Principal

__all__ = ["ExternalUsers", "ClaimNames", "role_of", "NO_PASSWORD"]

# The password hash of an external user: matches no password (it is not a hash at all).
NO_PASSWORD = "!external"
MAX_CACHED = 50_000


class ClaimNames:
    """Which claims carry the name, the email and the role (--jwt-*-claim)."""

    def __init__(self, name: str = "name", email: str = "email", role: str = "role") -> None:
        self.name, self.email, self.role = name, email, role


def _claim(claims: dict[str, Any], path: str) -> Any:
    """Returns a claim by name, or by a dotted path into nested objects (realm_access.roles)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def role_of(value: Any) -> str:
    """Returns the local role a role claim grants: admin, or user for anything else."""
    values = value if isinstance(value, list) else [value]
    return "admin" if "admin" in values else "user"


def _profile(claims: dict[str, Any], names: ClaimNames, sub: str) -> tuple[str, str]:
    """Returns (name, email) for a new external user; stand-ins where a claim is missing,
    invalid or (for the email) already taken by another account."""
    try:
        name = v.name(_claim(claims, names.name))
    except ValidationError:
        name = sub[:100]
    digest = hashlib.sha256(sub.encode("utf-8")).hexdigest()[:24]
    stand_in = f"{digest}@external.invalid"
    try:
        email = v.email(_claim(claims, names.email))
    except ValidationError:
        return name, stand_in
    if User.select().where(User.email == email).exists():
        return name, stand_in
    return name, email


class ExternalUsers:
    """Maps a provider's verified claims to a local user and the Principal services receive."""

    def __init__(self, run: Runner, notifier: Notifier, relay: Relay, names: ClaimNames,
                 ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.run = run
        self.notifier = notifier
        self.relay = relay
        self.names = names
        self.ttl = ttl
        self._clock = clock
        # sub -> (expires at, user id, name, role, token version), oldest first.
        self._cache: dict[str, tuple[float, int, str, str, int]] = {}

    async def principal(self, claims: dict[str, Any]) -> Principal:
        """Returns the caller for verified claims, creating or updating the local user."""
        sub = str(claims["sub"])
        role = role_of(_claim(claims, self.names.role))
        exp = int(claims["exp"])
        hit = self._cache.get(sub)
        if hit is not None and hit[0] > self._clock() and hit[3] == role:
            return Principal(hit[1], hit[2], role, hit[4], "", exp, sub)
        user, old_role, rows = await self.run(self._sync_tx, sub, role, claims)
        if old_role is not None and old_role != role:
            self.notifier.set_role(user.id, role)  # re-indexed first, as any role change
        self.relay.publish(rows)
        self._remember(sub, user)
        return Principal(user.id, user.name, user.role, user.token_version, "", exp, sub)

    def _sync_tx(self, sub: str, role: str,
                 claims: dict[str, Any]) -> tuple[User, str | None, list[Any]]:
        """Finds or creates the user of sub and gives it the token's role (blocking)."""
        with write_tx():
            user = User.get_or_none(User.external_id == sub)
            if user is None:
                name, email = _profile(claims, self.names, sub)
                try:
                    with db.atomic():
                        user = User.create(name=name, email=email, password_hash=NO_PASSWORD,
                                           role=role, external_id=sub)
                except peewee.IntegrityError:  # created meanwhile by another request
                    user = User.get(User.external_id == sub)
                    return user, user.role, []
                return user, None, self.relay.stage(feed.user_created(user.to_public()))
            old = user.role
            if old == role:
                return user, old, []
            user.role, user.updated_at = role, utcnow()
            user.save()
            return user, old, self.relay.stage(feed.role_changed(user.id, old, role, None,
                                                                 rfc3339(user.updated_at)))

    def _remember(self, sub: str, user: User) -> None:
        cache = self._cache
        cache.pop(sub, None)
        while len(cache) >= MAX_CACHED:
            del cache[next(iter(cache))]
        cache[sub] = (self._clock() + self.ttl, user.id, user.name, user.role,
                      user.token_version)

    def apply(self, control: Control) -> None:
        """Forgets a user whose account or role changed (a hub control observer)."""
        if isinstance(control, (CloseUser, SetRole)):
            user_id = control.user_id
            self._cache = {s: e for s, e in self._cache.items() if e[1] != user_id}
