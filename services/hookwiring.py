"""Builds the permission hooks and the webhooks from Settings and attaches the webhooks to
what they record: the hub's presence, the cluster's sweep, the outbox and the room messages."""

from __future__ import annotations

from auth.signature import load_or_create_hook_secret
from config import Settings
from hub.hub import Hub
from hub.redis.presence import RedisPresence
from models.db import Runner
from services.hookclient import HookClient
from services.hooks import Hooks
from services.messages import MessageService
from services.outbox import Relay
from services.webhookrelay import PARALLEL_KEYS, WebhookRelay
from services.webhooks import Webhooks

__all__ = ["make_hooks", "attach_webhooks"]


def make_hooks(settings: Settings, run: Runner,
               node_id: str) -> tuple[Hooks, Webhooks, HookClient | None]:
    """Returns the permission hooks, the webhooks and the HTTP client they share (none when
    neither --hooks nor --webhook-url is set)."""
    client = None
    if settings.hooks or settings.webhook_url:
        secret = settings.hook_secret or load_or_create_hook_secret(settings.data_dir)
        client = HookClient(secret, settings.hook_concurrency + PARALLEL_KEYS)
    hooks = Hooks(client, settings.hook_url, settings.hooks, settings.hook_timeout,
                  settings.hook_concurrency)
    relay = (WebhookRelay(run, client, settings.webhook_url, node_id, settings.webhook_retry_cap,
                          settings.webhook_max_age)
             if client is not None and settings.webhook_url else None)
    return hooks, Webhooks(run, relay, node_id, settings.webhook_events,
                           single_node=settings.broker != "redis"), client


def attach_webhooks(webhooks: Webhooks, hub: Hub, relay: Relay,
                    messages: MessageService) -> None:
    """Gives the webhooks the events they record: presence changes, lost nodes, user feed
    events (in the outbox's transaction) and room messages (in their batch's)."""
    if not webhooks.events:
        return
    hub.presence_observers.append(webhooks.presence_changed)
    if isinstance(hub.presence, RedisPresence):
        hub.presence.swept_observers.append(webhooks.nodes_lost)
    if any(t.startswith("user.") for t in webhooks.events):
        relay.webhooks = webhooks
    if webhooks.wants("channel.message"):
        messages.webhooks = webhooks
