"""The transactional outbox of feed events and the durable state of every stream."""

from __future__ import annotations

import peewee

from models.db import BaseModel

__all__ = ["OutboxEvent", "StreamState"]


class OutboxEvent(BaseModel):
    """A feed event committed with the change it announces; the relay publishes and marks it.

    `offset` stays null until the event is published; `published_at` is the wall time
    (Unix seconds) of that publish, which bounds how long it stays recoverable.
    """

    id = peewee.BigAutoField()
    event_id = peewee.CharField(max_length=36, unique=True)
    stream = peewee.CharField(max_length=80, default="feed")
    type = peewee.CharField(max_length=64)
    data = peewee.TextField()  # the event's JSON data
    targets = peewee.TextField()  # hub/codec.py's target encoding
    timestamp = peewee.CharField(max_length=32)
    offset = peewee.BigIntegerField(null=True, index=True, column_name="stream_offset")
    published_at = peewee.DoubleField(null=True)

    class Meta:
        table_name = "outbox"


class StreamState(BaseModel):
    """A stream's epoch and durable offset reservation (the sequencer never goes past it).

    `clean` is set by an orderly shutdown, when `reserved` is the last offset used and every
    event up to it is stored; `gaps` lists offset ranges `[low, high]` that a crash left
    uncertain (positions inside them are never recovered).
    """

    name = peewee.CharField(max_length=80, primary_key=True)
    epoch = peewee.CharField(max_length=32)
    reserved = peewee.BigIntegerField(default=0)
    clean = peewee.BooleanField(default=False)
    gaps = peewee.TextField(default="[]")

    class Meta:
        table_name = "streams"
