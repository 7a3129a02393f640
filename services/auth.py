"""Registration, login, token refresh and rotation, logout and password changes."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from auth import passwords
from auth.external import ExternalTokenError, ExternalVerifier, is_external
from auth.jwt import Claims, TokenError, TokenIssuer
from auth.ratelimit import RateLimiter
from hub import feed
from models.db import Batch, Runner, write_tx
from models.token import RefreshToken, Session, session_principals
from models.user import User, utcnow
from services import validation as v
from services.errors import AuthenticationError, PermissionDenied, RateLimited
from services.external import ExternalUsers
from services.notifier import Notifier
from services.outbox import Relay
from services.principal import Principal
from services.sessions import SessionCache
from services.users import create_user

__all__ = ["AuthService", "LoginLimits"]


class LoginLimits:
    """Login throttles that an attacker cannot turn against the account's owner.

    - per (account, IP) pair: 5 attempts per 15 minutes, cleared by a success: the guessing
      client is locked out of that account, nobody else is;
    - per IP: 30 attempts per minute, whatever the accounts;
    - per account: after 5 failed logins within 15 minutes (from anywhere) every further
      attempt for that account waits 0.25 s, doubling per failure up to 4 s, before the
      password is checked. It slows a distributed attack but never refuses the owner.

    `make(limit, window, name)` builds each limiter: in-memory for one node, or
    auth.sharedlimit.SharedRateLimiter so that every node of a cluster counts together.
    """

    PAIR_LIMIT, PAIR_WINDOW = 5, 15 * 60
    SLOWDOWN_AFTER = 5

    def __init__(self, enabled: bool = True,
                 make: Callable[[int, float, str], RateLimiter] | None = None) -> None:
        make = make or (lambda limit, window, name: RateLimiter(limit, window, name=name))
        self.enabled = enabled
        self.per_pair = make(self.PAIR_LIMIT, self.PAIR_WINDOW, "auth_per_pair")
        self.per_ip = make(30, 60, "auth_per_ip")
        self.register_per_ip = make(10, 60, "auth_register_per_ip")
        # Counts failures only; the limit is never reached, it just keeps the window.
        self.account_failures = make(1 << 30, self.PAIR_WINDOW, "auth_account_failures")
        self.slowdown_base, self.slowdown_cap = 0.25, 4.0

    async def check(self, limiter: RateLimiter, key: str, hit: bool) -> None:
        """Raises RateLimited when key is over the limiter's budget, recording a hit if asked."""
        if not self.enabled:
            return
        wait = await (limiter.acheck_and_hit(key) if hit else limiter.aretry_after(key))
        if wait:
            raise RateLimited(f"too many attempts; try again in {wait} seconds", wait)

    async def delay(self, account: str) -> float:
        """Returns how long an attempt for account waits before its password is checked."""
        if not self.enabled:
            return 0.0
        failures = await self.account_failures.acount(account)
        if failures < self.SLOWDOWN_AFTER:
            return 0.0
        return min(self.slowdown_cap,
                   self.slowdown_base * 2 ** min(failures - self.SLOWDOWN_AFTER, 16))

    async def failed(self, account: str) -> None:
        """Records a failed login for account."""
        if self.enabled:
            await self.account_failures.ahit(account)

    async def succeeded(self, account: str, ip: str) -> None:
        """Clears the pair's attempts and the account's failures after a correct password."""
        await self.per_pair.areset(f"{account}|{ip}")
        await self.account_failures.areset(account)


class AuthService:
    """Owns every operation that creates, checks or revokes credentials."""

    def __init__(
        self, run: Runner, hash: Runner, issuer: TokenIssuer, notifier: Notifier,
        limits: LoginLimits, relay: Relay, sessions: SessionCache | None = None,
        external: tuple[ExternalVerifier, ExternalUsers] | None = None,
    ) -> None:
        self.relay = relay
        # An identity provider's tokens, when --jwt-jwks-url or --jwt-public-key-file is set:
        # how they are verified, and the local users they map to.
        self.external = external
        # Sessions checked in the last few seconds; off (TTL 0) unless the context wires one
        # to the hub's controls, which is what invalidates it.
        self.sessions = sessions if sessions is not None else SessionCache(ttl=0)
        self.run = run
        # The database checks of sessions the cache lacks: those that arrive together share
        # one pool job and one statement.
        self.session_checks = Batch(run, self.check_sessions)
        # Password hashing has a pool of its own at lower CPU priority, so a login storm
        # cannot take the core away from the IOLoop (and fan-out) or from database work.
        self.hash = hash
        self.issuer = issuer
        self.notifier = notifier
        self.limits = limits

    # -- token bundles -------------------------------------------------------------------

    def _new_session_tokens(self, user: User, session_id: str | None = None) -> dict[str, Any]:
        """Creates a session (unless given) and a refresh token; call inside a transaction."""
        if session_id is None:
            session_id = str(uuid.uuid4())
            Session.create(id=session_id, user=user)
        refresh, jti = self.issuer.issue_refresh(user.id, user.token_version, session_id)
        RefreshToken.create(
            jti=jti,
            session=session_id,
            expires_at=utcnow() + dt.timedelta(seconds=self.issuer.refresh_ttl),
        )
        access = self.issuer.issue_access(user.id, user.role, user.token_version, session_id)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.issuer.access_ttl,
            "user": user.to_public(),
        }

    # -- operations ----------------------------------------------------------------------

    async def register(self, body: Any, ip: str) -> dict[str, Any]:
        """Creates a `user` account and returns its first tokens."""
        fields = v.Fields(body, ("name", "email", "password", "age"))
        name, email = fields.required("name", v.name), fields.required("email", v.email)
        password, age = fields.required("password", v.password), fields.optional("age", v.age)
        fields.done()
        await self.limits.check(self.limits.register_per_ip, ip, hit=True)
        password_hash = await self.hash(passwords.hash_password, password)
        result, rows = await self.run(self._register_tx, name, email, password_hash, age)
        self.relay.publish(rows)
        return result

    def _register_tx(self, name: str, email: str, password_hash: str,
                     age: int | None) -> tuple[dict, list]:
        with write_tx():
            user = create_user(name, email, password_hash, age=age)
            tokens = self._new_session_tokens(user)
            return tokens, self.relay.stage(feed.user_created(tokens["user"]))

    async def login(self, body: Any, ip: str) -> dict[str, Any]:
        """Checks credentials and returns tokens; unknown email and bad password look alike."""
        fields = v.Fields(body, ("email", "password"))
        email = fields.required("email", v.non_empty("email"))
        password = fields.required("password", v.non_empty("password"))
        fields.done()
        email = email.strip().lower()
        await self.limits.check(self.limits.per_ip, ip, hit=True)
        # Counted before the check, so a burst of parallel guesses cannot overtake the limit;
        # a success clears the count.
        await self.limits.check(self.limits.per_pair, f"{email}|{ip}", hit=True)
        delay = await self.limits.delay(email)
        if delay:
            await asyncio.sleep(delay)
        password = password[:1024]
        user = await self.run(User.get_or_none, User.email == email)
        if user is None or user.external:  # an identity provider's user has no password here
            await self.hash(passwords.verify_dummy, password)
            await self.limits.failed(email)
            raise AuthenticationError("invalid email or password")
        if not await self.hash(passwords.verify_password, password, user.password_hash):
            await self.limits.failed(email)
            raise AuthenticationError("invalid email or password")
        await self.limits.succeeded(email, ip)
        return await self.run(self._login_tx, user)

    def _login_tx(self, user: User) -> dict:
        with write_tx():
            return self._new_session_tokens(user)

    async def refresh(self, body: Any) -> dict[str, Any]:
        """Rotates a refresh token; a reused one revokes its whole session."""
        fields = v.Fields(body, ("refresh_token",))
        token = fields.required("refresh_token", v.non_empty("refresh_token"))
        fields.done()
        try:
            claims = self.issuer.verify(token, "refresh")
        except TokenError as exc:
            raise AuthenticationError(f"refresh token rejected: {exc.message}") from None
        result, revoked = await self.run(self._refresh_tx, claims)
        if revoked:
            self.notifier.session_revoked(claims.sid)
            raise AuthenticationError("refresh token was already used; the session is revoked")
        return result

    def _refresh_tx(self, claims: Claims) -> tuple[dict | None, bool]:
        with write_tx():
            row = RefreshToken.get_or_none(RefreshToken.jti == claims.jti)
            session = Session.get_or_none(Session.id == claims.sid)
            user = User.get_or_none(User.id == claims.user_id)
            if row is None or session is None or user is None or row.session_id != session.id:
                raise AuthenticationError("refresh token rejected: unknown token")
            if not session.active:
                raise AuthenticationError("refresh token rejected: session revoked")
            if user.token_version != claims.ver:
                raise AuthenticationError("refresh token rejected: credentials changed")
            if row.used_at is not None:
                session.revoked_at = utcnow()
                session.save()
                return None, True
            used = RefreshToken.update(used_at=utcnow()).where(
                (RefreshToken.jti == row.jti) & RefreshToken.used_at.is_null()
            ).execute()
            if not used:  # a concurrent request rotated it first: that is reuse too
                Session.update(revoked_at=utcnow()).where(Session.id == session.id).execute()
                return None, True
            return self._new_session_tokens(user, session.id), False

    async def logout(self, principal: Principal) -> None:
        """Revokes the caller's session: its refresh tokens and access tokens stop working."""
        sid = principal.session_id
        await self.run(
            lambda: Session.update(revoked_at=utcnow())
            .where((Session.id == sid) & Session.revoked_at.is_null())
            .execute()
        )
        self.notifier.session_revoked(sid)

    async def change_password(self, principal: Principal, body: Any) -> dict[str, Any]:
        """Replaces the password, revokes every older token and returns new ones."""
        fields = v.Fields(body, ("current_password", "new_password"))
        current = fields.required("current_password", v.non_empty("current_password"))
        new = fields.required("new_password", lambda value: v.password(value, "new_password"))
        fields.done()
        if principal.external_id is not None:
            raise PermissionDenied("this account signs in through the identity provider; "
                                   "change its password there")
        stored = await self.run(lambda: User.get_by_id(principal.id).password_hash)
        if not await self.hash(passwords.verify_password, current, stored):
            raise AuthenticationError("current password is incorrect")
        new_hash = await self.hash(passwords.hash_password, new)
        tokens, version, rows = await self.run(self._change_password_tx, principal.id, new_hash)
        self.relay.publish(rows)  # told first, then the older sessions' sockets close
        self.notifier.close_older_sessions(principal.id, version)
        return tokens

    def _change_password_tx(self, user_id: int,
                            new_hash: str) -> tuple[dict[str, Any], int, list]:
        """Stores the new hash, revokes every session; returns new tokens and the new version."""
        with write_tx():
            user = User.get_by_id(user_id)
            user.password_hash = new_hash
            user.token_version += 1
            user.updated_at = utcnow()
            user.save()
            Session.update(revoked_at=utcnow()).where(
                (Session.user == user_id) & Session.revoked_at.is_null()
            ).execute()
            return (self._new_session_tokens(user), user.token_version,
                    self.relay.stage(feed.password_changed(user_id)))

    # -- authentication of requests ------------------------------------------------------

    async def authenticate(self, token: str) -> Principal:
        """Returns the caller behind an access token, checking revocation in the database
        (or in the session cache, for a session checked in the last few seconds). With an
        identity provider configured, a token signed with an asymmetric algorithm is its."""
        if self.external is not None and is_external(token):
            verifier, users = self.external
            try:
                claims = await verifier.verify(token)
            except ExternalTokenError as exc:
                raise AuthenticationError(exc.message) from None
            return await users.principal(claims)
        try:
            claims = self.issuer.verify(token, "access")
        except TokenError as exc:
            raise AuthenticationError(exc.message) from None
        return await self.sessions.lookup(claims, self._check)

    async def _check(self, claims: Claims) -> Principal:
        return await self.session_checks(claims)

    @staticmethod
    def check_sessions(claims: list[Claims]) -> list[tuple[bool, Any]]:
        """Checks that each token's user, version and session are still current (blocking):
        one outcome per token, (True, its Principal) or (False, the AuthenticationError).

        One query reads every session with its user; only a refusal looks again, to say which.
        """
        rows = session_principals([c.sid for c in claims])
        outcomes: list[tuple[bool, Any]] = []
        for c in claims:
            row = rows.get(c.sid)
            if row is not None:
                revoked_at, user_id, name, role, version = row
                if revoked_at is None and user_id == c.user_id and version == c.ver:
                    outcomes.append((True, Principal(user_id, name, role, version, c.sid, c.exp)))
                    continue
            found = User.select().where(User.id == c.user_id).exists()
            outcomes.append((False, AuthenticationError(
                "session revoked" if found else "account not found")))
        return outcomes
