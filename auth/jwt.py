"""Issues and verifies HS256 access and refresh tokens."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode, base64url_encode

__all__ = [
    "TokenIssuer", "Claims", "TokenError", "load_or_create_secret", "stored_secret", "MIN_SECRET",
]

log = logging.getLogger("auth")

ALGORITHM = "HS256"
# Access tokens whose signature was verified, remembered by their exact text: a socket that
# reconnects, or a user's tabs, present the same token again (see TokenIssuer.verify).
VERIFIED_TOKENS = 10_000
REQUIRED = ["iss", "aud", "exp", "iat", "sub", "typ", "ver", "sid"]
MIN_SECRET = 32  # characters of an HS256 secret


class TokenError(Exception):
    """Raised for a token that is malformed, forged, expired or of the wrong type."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.expired = expired


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified contents of a token."""

    user_id: int
    typ: str
    ver: int
    sid: str
    exp: int
    jti: str = ""
    role: str = ""


class TokenIssuer:
    """Signs and verifies tokens for one secret, issuer and audience."""

    def __init__(
        self, secret: str, issuer: str, audience: str, access_ttl: int, refresh_ttl: int
    ) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET} characters")
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        # token text -> its claims, oldest first; only access tokens, only verified ones.
        self._verified: dict[str, Claims] = {}
        # For _decode_own(): the HMAC keyed with the secret (PyJWT's own key checks run once
        # here), copied per token, and the header segment PyJWT writes on every token signed.
        self._mac = hmac.new(HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret),
                             digestmod=hashlib.sha256)
        self._header = jwt.encode({}, secret, algorithm=ALGORITHM).partition(".")[0]

    def _sign(self, user_id: int, typ: str, ver: int, sid: str, ttl: int, **extra: object) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + ttl,
            "typ": typ,
            "ver": ver,
            "sid": sid,
            **extra,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def issue_access(self, user_id: int, role: str, ver: int, sid: str) -> str:
        """Returns a signed access token."""
        return self._sign(user_id, "access", ver, sid, self.access_ttl, role=role)

    def issue_refresh(self, user_id: int, ver: int, sid: str) -> tuple[str, str]:
        """Returns a signed refresh token and its unique id (jti)."""
        jti = str(uuid.uuid4())
        return self._sign(user_id, "refresh", ver, sid, self.refresh_ttl, jti=jti), jti

    def verify(self, token: str, typ: str) -> Claims:
        """Returns the claims of a valid token of the given type, else raises TokenError.

        An access token verified before is not decoded again: the same text carries the same
        signed claims, so only its expiry is checked anew.
        """
        claims = self._verified.get(token) if typ == "access" else None
        if claims is not None:
            if claims.exp <= time.time():
                del self._verified[token]
                raise TokenError("token expired", expired=True)
            return claims
        claims = self._decode_own(token, typ) or self._decode(token, typ)
        if typ == "access":
            verified = self._verified
            while len(verified) >= VERIFIED_TOKENS:
                del verified[next(iter(verified))]
            verified[token] = claims
        return claims

    def _decode_own(self, token: str, typ: str) -> Claims | None:
        """Returns the claims of a valid token exactly as this issuer signs them, else None.

        A fast path in front of jwt.decode(), which costs ten times as much (its checks of the
        key, of each segment's characters, its options): a new user's first handshake pays it.
        It accepts only a token with this issuer's header segment, a signature equal (in
        constant time) to the one this secret gives its first two segments, and every claim
        of the type and value _sign() writes, still valid now. Anything else, valid or not,
        returns None, and jwt.decode() decides and names the error, so this path accepts a
        subset of what jwt.decode() accepts (tests/test_jwt.py checks that on generated
        tokens) and never refuses.
        """
        head, _, rest = token.partition(".")
        if head != self._header or not token.isascii():
            return None
        body, _, signature = rest.partition(".")
        mac = self._mac.copy()
        mac.update(token[:len(head) + 1 + len(body)].encode("ascii"))
        if not hmac.compare_digest(base64url_encode(mac.digest()), signature.encode("ascii")):
            return None
        try:
            payload: Any = json.loads(base64url_decode(body))
            sub, iat, exp, ver = payload["sub"], payload["iat"], payload["exp"], payload["ver"]
            sid, jti, role = payload["sid"], payload.get("jti", ""), payload.get("role", "")
            now = time.time()
            if (payload["iss"] != self.issuer or payload["aud"] != self.audience
                    or payload["typ"] != typ or "nbf" in payload
                    or type(iat) is not int or iat > now or type(exp) is not int or exp <= now
                    or type(ver) is not int or type(sub) is not str or type(sid) is not str
                    or type(jti) is not str or type(role) is not str):
                return None
            return Claims(user_id=int(sub), typ=typ, ver=ver, sid=sid, exp=exp, jti=jti,
                          role=role)
        except (binascii.Error, ValueError, TypeError, KeyError):
            return None

    def _decode(self, token: str, typ: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired", expired=True) from None
        except jwt.PyJWTError:
            raise TokenError("invalid token") from None
        if payload.get("typ") != typ:
            raise TokenError(f"expected an {typ} token")
        try:
            return Claims(
                user_id=int(payload["sub"]),
                typ=typ,
                ver=int(payload["ver"]),
                sid=str(payload["sid"]),
                exp=int(payload["exp"]),
                jti=str(payload.get("jti", "")),
                role=str(payload.get("role", "")),
            )
        except (TypeError, ValueError):
            raise TokenError("invalid token") from None


def stored_secret(data_dir: str) -> str | None:
    """Returns the secret kept in <data_dir>/jwt_secret, or None if there is none yet."""
    try:
        with open(os.path.join(data_dir, "jwt_secret"), encoding="ascii",
                  errors="replace") as fh:
            return fh.read().strip()
    except FileNotFoundError:
        return None


def load_or_create_secret(data_dir: str) -> str:
    """Reads the secret from <data_dir>/jwt_secret, creating it (mode 0600) the first time."""
    path = os.path.join(data_dir, "jwt_secret")
    stored = stored_secret(data_dir)
    if stored is not None:
        return stored
    os.makedirs(data_dir, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    log.warning("generated a new JWT secret in %s (mode 0600); set JWT_SECRET to manage it", path)
    return secret
