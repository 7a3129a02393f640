"""Tokens an identity provider signed: verified with its JWKS or a PEM public key.

Only asymmetric algorithms (RS256, ES256, EdDSA) are accepted here, with the provider's
public keys; the server's own HS256 tokens are verified with its secret elsewhere
(auth/jwt.py), so a token signed with HS256 and the public key as its secret is never
checked against that key (no algorithm confusion) and `none` never passes.

The JWKS is fetched with PyJWT's JWKS client in a worker thread (it blocks), with a short
timeout; its keys are kept by `kid`. A token naming an unknown `kid` makes the set be fetched
again, at most once a minute (a provider rotating its keys), and the set is refreshed when it
is older than ten minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

__all__ = ["ExternalVerifier", "ALGORITHMS", "ExternalTokenError", "is_external"]

log = logging.getLogger("auth")

ALGORITHMS = ("RS256", "ES256", "EdDSA")
FETCH_TIMEOUT = 3.0  # seconds for one JWKS request
REFETCH_EVERY = 60.0  # an unknown kid refetches the set at most this often
MAX_AGE = 600.0  # seconds a fetched set is trusted before it is fetched again
LEEWAY = 30  # seconds of clock skew allowed on exp, nbf and iat


class ExternalTokenError(Exception):
    """A provider's token that is malformed, forged, expired or from the wrong issuer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_external(token: str) -> bool:
    """Tells whether a token's header names an asymmetric algorithm (a provider's token)."""
    try:
        return jwt.get_unverified_header(token).get("alg") in ALGORITHMS
    except jwt.PyJWTError:
        return False


class ExternalVerifier:
    """Verifies one identity provider's tokens: signature, exp, issuer and audience."""

    def __init__(self, *, jwks_url: str = "", public_key: str = "", issuer: str = "",
                 audience: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        if bool(jwks_url) == bool(public_key):
            raise ValueError("give exactly one of a JWKS URL and a public key")
        self.issuer = issuer or None
        self.audience = audience or None
        self._clock = clock
        self._client = (PyJWKClient(jwks_url, cache_keys=False, cache_jwk_set=False,
                                    timeout=FETCH_TIMEOUT) if jwks_url else None)
        self._public_key = public_key
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._fetching: asyncio.Future[None] | None = None
        self.fetches = 0  # JWKS requests made (tests, metrics)

    async def verify(self, token: str) -> dict[str, Any]:
        """Returns the token's claims if it is valid, else raises ExternalTokenError."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise ExternalTokenError("invalid token") from None
        if header.get("alg") not in ALGORITHMS:
            raise ExternalTokenError(f"unsupported token algorithm {header.get('alg')!r}")
        key: Any = self._public_key or (await self._key(header.get("kid"))).key
        try:
            return jwt.decode(
                token, key, algorithms=list(ALGORITHMS), issuer=self.issuer,
                audience=self.audience, leeway=LEEWAY,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None})
        except jwt.ExpiredSignatureError:
            raise ExternalTokenError("token expired") from None
        except jwt.PyJWTError as exc:
            raise ExternalTokenError(f"invalid token: {exc}") from None

    async def _key(self, kid: Any) -> PyJWK:
        """Returns the set's key for kid, fetching the set when it is stale or kid is new
        (at most once a minute for a new kid)."""
        now = self._clock()
        age = None if self._fetched_at is None else now - self._fetched_at
        if (self._fetching is not None or age is None or age > MAX_AGE
                or (kid not in self._keys and age > REFETCH_EVERY)):
            await self._fetch()  # (joining one under way: its keys are the newest)
        found = self._keys.get(kid if isinstance(kid, str) else "")
        if found is None and kid is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))  # a provider with one key may omit kid
        if found is None:
            raise ExternalTokenError(f"unknown signing key {kid!r}")
        return found

    async def _fetch(self) -> None:
        """Fetches the JWKS once, however many requests are waiting for it."""
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch_now())
        fetching = self._fetching
        try:
            await asyncio.shield(fetching)
        finally:
            if fetching.done():
                self._fetching = None

    async def _fetch_now(self) -> None:
        assert self._client is not None
        self.fetches += 1
        self._fetched_at = self._clock()  # a failed fetch also waits a minute to retry
        try:
            jwk_set = await asyncio.get_running_loop().run_in_executor(
                None, self._client.get_jwk_set, True)
        except Exception as exc:
            log.warning("could not fetch the JWKS from %s: %s", self._client.uri, exc)
            if not self._keys:
                raise ExternalTokenError("the identity provider's keys cannot be fetched") from None
            return
        self._keys = {k.key_id or "": k for k in jwk_set.keys}
