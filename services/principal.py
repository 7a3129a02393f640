"""Who is calling: the small, frozen records of an authenticated caller that services receive.

A `Principal` is a user (signed in here, or by an identity provider the server trusts); a
`KeyPrincipal` is another service of the application, calling the server API with an API key.
Services decide what each may do.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.user import ADMIN_ROLES
from services.errors import InsufficientScope

__all__ = ["Principal", "KeyPrincipal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as stored when the token was checked, and its token's expiry."""

    id: int
    name: str
    role: str
    token_version: int
    session_id: str
    expires_at: int  # the access token's `exp`, Unix seconds
    # The identity provider's `sub` for a user signed in there (None: a local account).
    external_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """True for the admin and superadmin roles."""
        return self.role in ADMIN_ROLES


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """An application service calling with an API key: the key's id, name and scopes."""

    id: int
    name: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """Raises InsufficientScope (403) unless the key carries scope."""
        if scope not in self.scopes:
            raise InsufficientScope(f"this API key lacks the {scope!r} scope")
