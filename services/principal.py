"""Who is calling: the small, frozen record of an authenticated caller that services receive."""

from __future__ import annotations

from dataclasses import dataclass

from models.user import ADMIN_ROLES

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as stored when the token was checked, and its token's expiry."""

    id: int
    name: str
    role: str
    token_version: int
    session_id: str
    expires_at: int  # the access token's `exp`, Unix seconds

    @property
    def is_admin(self) -> bool:
        """True for the admin and superadmin roles."""
        return self.role in ADMIN_ROLES
