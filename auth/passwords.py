"""Hashes and verifies passwords with argon2id (blocking: call from the thread pool)."""

from __future__ import annotations

from passlib.context import CryptContext

__all__ = ["hash_password", "verify_password", "verify_dummy"]

# OWASP's argon2id baseline (19 MiB, 2 passes): tens of milliseconds per hash.
_context = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)
_DUMMY_HASH = _context.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """Returns the argon2id hash of password."""
    return _context.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Tells whether password matches password_hash."""
    try:
        return _context.verify(password, password_hash)
    except (ValueError, TypeError):
        return False


def verify_dummy(password: str) -> None:
    """Spends the same time as a real check, so an unknown email answers like a wrong password."""
    _context.verify(password, _DUMMY_HASH)
