"""The write-behind batch insert (services/messages.py _insert) on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import peewee
import pytest

from models.db import db
from models.room import Room, RoomMessage
from models.user import User
from services.messages import MessageIds, _insert


def _rows(ids: MessageIds, rooms: list[str], sender: int, count: int) -> list[dict]:
    rows = []
    for n in range(count):
        message_id, when = ids.next()
        rows.append({"id": message_id, "room": rooms[n % len(rooms)], "sender": sender,
                     "sender_name": "Ann", "body": f'{{"seq":{n},"text":"h\u00e9"}}',
                     "created_at": when})
    return rows


def test_batch_insert_stores_every_row_as_published(database):
    """Every row of a large batch is stored with the same id, room, sender, body and time."""
    with db.connection_context():
        user = User.create(name="Ann", email="ann@example.com", password_hash="x")
        Room.create(name="a")
        Room.create(name="b")
        rows = _rows(MessageIds("abcdef"), ["a", "b"], user.id, 500)
        assert _insert(rows) == 500
        stored = {m.id: m for m in RoomMessage.select()}
    assert len(stored) == 500
    for row in rows:
        message = stored[row["id"]]
        assert (message.room, message.sender_id, message.sender_name, message.body) == (
            row["room"], user.id, "Ann", row["body"])
        assert message.created_at == row["created_at"]
        assert isinstance(message.created_at, dt.datetime)


def test_batch_insert_skips_deleted_rooms_unlinks_deleted_senders_and_ignores_repeats(database):
    """Rows of deleted rooms are left out, a deleted sender keeps the name, repeats are no-ops."""
    with db.connection_context():
        user = User.create(name="Ann", email="ann@example.com", password_hash="x")
        Room.create(name="a")
        ids = MessageIds("abcdef")
        rows = _rows(ids, ["a", "gone"], user.id, 4) + _rows(ids, ["a"], user.id + 999, 1)
        assert _insert(rows) == 3
        assert _insert(rows[:1]) == 1  # a retry after a lost reply stores nothing twice
        stored = list(RoomMessage.select().order_by(RoomMessage.id))
    assert [m.id for m in stored] == [rows[0]["id"], rows[2]["id"], rows[4]["id"]]
    assert stored[2].sender_id is None and stored[2].sender_name == "Ann"


def test_batch_insert_errors_surface_as_peewee_errors(database):
    """A failing statement raises peewee's error class, which the runner's retry logic knows."""
    with db.connection_context():
        Room.create(name="a")
        db.execute_sql('DROP TABLE "room_messages"')
        rows = _rows(MessageIds("abcdef"), ["a"], 1, 1)
        with pytest.raises(peewee.DatabaseError):
            _insert(rows)
        db.create_tables([RoomMessage])
