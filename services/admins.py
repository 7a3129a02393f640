"""Creates or promotes admin accounts from the command line (blocking, no event loop)."""

from __future__ import annotations

from auth import passwords
from models.db import db, write_tx
from models.user import User, utcnow
from services import validation as v
from services.errors import ValidationError

__all__ = ["ensure_admin"]


def ensure_admin(email: str, password: str, name: str, role: str) -> tuple[User, str]:
    """Creates an admin, or gives an existing account the role (keeping its password).

    Returns (user, outcome) where outcome is "created", "promoted" or "unchanged".
    """
    email, password, name = v.email(email), v.password(password), v.name(name)
    if role not in ("admin", "superadmin"):
        raise ValidationError("role must be admin or superadmin")
    with db.connection_context(), write_tx():
        user = User.get_or_none(User.email == email)
        if user is None:
            password_hash = passwords.hash_password(password)
            return User.create(name=name, email=email, password_hash=password_hash, role=role), \
                "created"
        if user.role == role:
            return user, "unchanged"
        user.role, user.updated_at = role, utcnow()
        user.save()
        return user, "promoted"
