"""Webhooks waiting to be delivered, and the open sockets whose close is still to report."""

from __future__ import annotations

import peewee

from models.db import BaseModel

__all__ = ["Webhook", "WebhookSocket"]


class Webhook(BaseModel):
    """One event the application is to be told about; deleted once it has answered 2xx.

    Recorded in the transaction of the change it reports (an outbox row, a stored room
    message) or in a batch of socket events. Rows of one `order_key` (a user, a channel) are
    delivered in id order: only the oldest row of a key may be claimed, so a later event
    waits for an earlier one. A node delivers what it claimed (`claimed_by`) until
    `claimed_until`; after that any node may claim the row again.
    """

    id = peewee.BigAutoField()
    event_id = peewee.CharField(max_length=64, unique=True)
    type = peewee.CharField(max_length=40)
    order_key = peewee.CharField(max_length=100)
    body = peewee.TextField()  # the JSON POSTed: {id, type, data, timestamp, node}
    created_at = peewee.DoubleField()  # Unix seconds: bounds the retries (--webhook-max-age)
    attempts = peewee.IntegerField(default=0)
    next_at = peewee.DoubleField(default=0.0)  # not tried again before (Unix seconds)
    claimed_by = peewee.CharField(max_length=64, null=True)
    claimed_until = peewee.DoubleField(null=True)
    last_error = peewee.CharField(max_length=200, null=True)

    class Meta:
        table_name = "webhooks"
        indexes = ((("order_key", "id"), False),)


class WebhookSocket(BaseModel):
    """An open connection whose `connection.closed` is still to be recorded.

    Written with its `connection.opened` and deleted with its close, so a node lost with its
    sockets leaves rows behind: the node that notices records their close (`node lost`).
    """

    client_id = peewee.CharField(max_length=64, primary_key=True)
    node = peewee.CharField(max_length=64, index=True)
    user_id = peewee.BigIntegerField()
    transport = peewee.CharField(max_length=16)
    opened_at = peewee.DoubleField()

    class Meta:
        table_name = "webhook_sockets"
