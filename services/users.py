"""Profile reads and edits, admin user management and role changes."""

from __future__ import annotations

import math
from typing import Any

import peewee

from auth import passwords
from hub import feed
from models.db import Runner, db, write_tx
from models.user import User, rfc3339, utcnow
from services import validation as v
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from services.notifier import Notifier
from services.outbox import Relay
from services.principal import Principal

__all__ = ["UserService", "EDITABLE", "create_user", "ensure_admin"]

EDITABLE = ("name", "email", "age")
_CLEAN = {"name": v.name, "email": v.email, "age": v.age}


def _parse_changes(body: Any) -> dict[str, Any]:
    fields = v.Fields(body, EDITABLE)
    if not fields.body:
        raise ValidationError(f"send at least one of: {', '.join(EDITABLE)}")
    changes = {key: fields.check(key, _CLEAN[key], value) for key, value in fields.body.items()
               if key in _CLEAN}
    fields.done()
    return changes


def create_user(
    name: str, email: str, password_hash: str, *, age: int | None = None, role: str = "user"
) -> User:
    """Inserts an account (call inside a transaction); 409 if the email is taken."""
    try:
        with db.atomic():
            return User.create(name=name, email=email, password_hash=password_hash, age=age,
                               role=role)
    except peewee.IntegrityError:
        raise Conflict("an account with this email already exists") from None


def ensure_admin(email: str, password: str, name: str, role: str) -> tuple[dict[str, Any], str]:
    """Creates an admin, or gives an existing account the role (keeping its password).

    Blocking: for the command line, with no event loop. Returns (public user, outcome) where
    outcome is "created", "promoted" or "unchanged".
    """
    fields = v.Fields({"email": email, "password": password, "name": name, "role": role})
    email, password = fields.required("email", v.email), fields.required("password", v.password)
    name = fields.required("name", v.name)
    fields.required("role", v.choice("role", ("admin", "superadmin")))
    fields.done()
    with db.connection_context(), write_tx():
        user = User.get_or_none(User.email == email)
        if user is None:
            password_hash = passwords.hash_password(password)
            return create_user(name, email, password_hash, role=role).to_public(), "created"
        if user.role == role:
            return user.to_public(), "unchanged"
        user.role, user.updated_at = role, utcnow()
        user.save()
        return user.to_public(), "promoted"


class UserService:
    """Owns reads and writes of user accounts."""

    def __init__(self, run: Runner, notifier: Notifier, relay: Relay) -> None:
        self.run = run
        self.notifier = notifier
        self.relay = relay

    async def get(self, actor: Principal, user_id: int) -> dict[str, Any]:
        """Returns a user's public fields; admins see anyone, others only themselves."""
        if not actor.is_admin and actor.id != user_id:
            raise PermissionDenied("admin role required to view other users")
        return (await self.run(self._load, user_id)).to_public()

    @staticmethod
    def _load(user_id: int) -> User:
        user = User.get_or_none(User.id == user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    async def list(self, page: str | None, per_page: str | None) -> dict[str, Any]:
        """Returns one page of users ordered by id."""
        fields = v.Fields({"page": page, "per_page": per_page})
        page_n = fields.check("page", lambda x: v.query_number(x, "page", 1, 1_000_000), page)
        size = fields.check("per_page", lambda x: v.query_number(x, "per_page", 20, 100), per_page)
        fields.done()

        def query() -> dict[str, Any]:
            total = User.select().count()
            rows = User.select().order_by(User.id).paginate(page_n, size)
            return {
                "users": [u.to_public() for u in rows],
                "page": page_n,
                "per_page": size,
                "total": total,
                "pages": math.ceil(total / size) if total else 0,
            }

        return await self.run(query)

    async def update(self, actor: Principal, user_id: int, body: Any) -> dict[str, Any]:
        """Edits name, email or age; admins may edit others (a superadmin only by a superadmin)."""
        changes = _parse_changes(body)
        by_self = actor.id == user_id
        if not by_self:
            self._require_admin(actor)
        user, rows = await self.run(self._update_tx, actor, user_id, changes, by_self)
        self.relay.publish(rows)
        return user.to_public()

    def _update_tx(
        self, actor: Principal, user_id: int, changes: dict[str, Any], by_self: bool
    ) -> tuple[User, list]:
        """Applies the changes and stages user.updated (and profile.updated) with them."""
        with write_tx():
            user = self._load(user_id)
            self._guard_superadmin(actor, user)
            changed = [k for k, value in changes.items() if getattr(user, k) != value]
            if not changed:
                return user, []
            for key in changed:
                setattr(user, key, changes[key])
            user.updated_at = utcnow()
            try:
                with db.atomic():
                    user.save()
            except peewee.IntegrityError:
                raise Conflict("an account with this email already exists") from None
            return user, self.relay.stage(feed.user_updated(
                user_id, changed, rfc3339(user.updated_at), by_self))

    async def delete(self, actor: Principal, user_id: int) -> dict[str, Any]:
        """Deletes an account; its tokens stop working and its sockets are closed."""
        self._require_admin(actor)
        if actor.id == user_id:
            raise PermissionDenied("admins cannot delete their own account")

        def delete_tx() -> tuple[dict[str, Any], list]:
            with write_tx():
                user = self._load(user_id)
                self._guard_superadmin(actor, user)
                public = user.to_public()
                # Counted, so that of two racing deletes only one succeeds (PostgreSQL lets
                # both read the row; the second DELETE then finds nothing).
                if not User.delete().where(User.id == user_id).execute():
                    raise NotFound(f"user {user_id} not found")
                return public, self.relay.stage(feed.user_deleted(public, actor.id))

        public, rows = await self.run(delete_tx)
        self.notifier.close_user(user_id)
        self.relay.publish(rows)
        return public

    async def change_role(self, actor: Principal, user_id: int, body: Any) -> dict[str, Any]:
        """Changes a role by the rules: admins only, never one's own, superadmin by superadmins."""
        self._require_admin(actor)
        fields = v.Fields(body, ("role",))
        new_role = fields.required("role", v.role)
        fields.done()
        if actor.id == user_id:
            raise PermissionDenied("you cannot change your own role")
        if new_role == "superadmin" and actor.role != "superadmin":
            raise PermissionDenied("only a superadmin can grant the superadmin role")

        def role_tx() -> tuple[User, str, list]:
            with write_tx():
                user = self._load(user_id)
                if user.role == "superadmin" and actor.role != "superadmin":
                    raise PermissionDenied("only a superadmin can remove the superadmin role")
                old, rows = user.role, []
                if old != new_role:
                    user.role = new_role
                    user.updated_at = utcnow()
                    user.save()
                    rows = self.relay.stage(feed.role_changed(
                        user_id, old, new_role, actor.id, rfc3339(user.updated_at)))
                return user, old, rows

        user, old_role, rows = await self.run(role_tx)
        if old_role != new_role:
            # Re-indexed first: a demoted admin is told once, then hears no admin event.
            self.notifier.set_role(user_id, new_role)
        self.relay.publish(rows)
        return user.to_public()

    @staticmethod
    def _require_admin(actor: Principal) -> None:
        if not actor.is_admin:
            raise PermissionDenied("admin role required")

    @staticmethod
    def _guard_superadmin(actor: Principal, target: User) -> None:
        is_peer = target.role == "superadmin" and target.id != actor.id
        if is_peer and actor.role != "superadmin":
            raise PermissionDenied("only a superadmin can modify a superadmin account")
