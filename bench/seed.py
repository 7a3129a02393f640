"""Seeds a fresh database with bench users, sessions and rooms, and mints their access tokens.

The password is hashed once and the hash reused for every user, and tokens are minted with
the server's own TokenIssuer and secret, so 10k authenticated connections cost no 10k
password hashes. Every token is a real one: the server checks its signature, then the user's
token_version and the session row in the database, as for any client.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["Seeded", "seed", "BENCH_PASSWORD"]

BENCH_PASSWORD = "bench-password-1"


@dataclass
class Seeded:
    """Tokens for the seeded accounts: one per bystander user, the target user and an admin."""

    user_tokens: list[str]
    user_emails: list[str]
    target_token: str
    target_id: int
    admin_token: str


def _insert(model: Any, rows: list[dict[str, Any]]) -> None:
    """Inserts rows in batches of 500."""
    for start in range(0, len(rows), 500):
        model.insert_many(rows[start:start + 500]).execute()


def seed(data_dir: str, secret: str, users: int, token_ttl: int, database_url: str = "",
         rooms: list[str] | tuple[str, ...] = ()) -> Seeded:
    """Creates `users` plain users, one target user, one admin and the public rooms named in
    rooms; returns the users' tokens. The database is SQLite in data_dir, or database_url."""
    from auth.jwt import TokenIssuer
    from auth.passwords import hash_password
    from models.db import db, init_db
    from models.room import Room
    from models.token import Session
    from models.user import User

    os.makedirs(data_dir, exist_ok=True)
    database = init_db(database_url or "sqlite:///" + os.path.join(data_dir, "app.db"))
    issuer = TokenIssuer(secret, "events-server", "events-server", token_ttl, token_ttl)
    password_hash = hash_password(BENCH_PASSWORD)
    rows = [{"name": f"Bench User {i}", "email": f"bench{i}@example.com", "age": 30,
             "role": "user"} for i in range(users)]
    rows.append({"name": "Bench Target", "email": "target@example.com", "age": 30, "role": "user"})
    rows.append({"name": "Bench Admin", "email": "admin@example.com", "age": 40, "role": "admin"})
    with db.connection_context(), db.atomic():
        _insert(User, [{**r, "password_hash": password_hash} for r in rows])
        people = list(User.select(User.id, User.email, User.role, User.token_version)
                      .order_by(User.id))
        sessions = [{"id": str(uuid.uuid4()), "user": u.id} for u in people]
        _insert(Session, sessions)
        _insert(Room, [{"name": n, "title": f"Bench {n}", "private": False} for n in rooms])
    database.close()
    tokens = [issuer.issue_access(u.id, u.role, u.token_version, s["id"])
              for u, s in zip(people, sessions, strict=True)]
    by_email = {u.email: i for i, u in enumerate(people)}
    t, a = by_email["target@example.com"], by_email["admin@example.com"]
    plain = [i for i, u in enumerate(people) if u.email.startswith("bench")]
    return Seeded(user_tokens=[tokens[i] for i in plain],
                  user_emails=[people[i].email for i in plain], target_token=tokens[t],
                  target_id=people[t].id, admin_token=tokens[a])
