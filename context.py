"""The application's shared context: settings, pools, hub, broker and services, in one record.

Built once per application by app.py's make_context() and handed to every handler through
initialize(); there are no module-level singletons, so each test gets a fresh one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado.ioloop import PeriodicCallback

from auth.ratelimit import RateLimiter
from hub.redis.presence import RedisPresence

if TYPE_CHECKING:
    from auth.jwt import TokenIssuer
    from config import Settings
    from edge.heartbeat import Heartbeat
    from edge.looplag import LoopLag
    from edge.origins import Origins
    from edge.sse import SsePinger
    from hub.broker import Broker
    from hub.hub import Hub
    from hub.nodestats import ClusterStats
    from hub.notify import HubNotifier
    from models.db import Runner
    from services.alerts import AlertService
    from services.apikeys import ApiKeyService
    from services.auth import AuthService
    from services.channels import ChannelVerbs
    from services.health import HealthMonitor
    from services.hookclient import HookClient
    from services.hooks import Hooks
    from services.inbound import Inbound
    from services.messages import MessageService
    from services.metrics import Metrics
    from services.outbox import Relay
    from services.rooms import RoomService
    from services.serverapi import ServerApi
    from services.streams import StreamStore
    from services.users import UserService
    from services.webhooks import Webhooks

__all__ = ["Context", "SWEEP_SECONDS"]

SWEEP_SECONDS = 60  # how often entries past --history-ttl leave every stream


@dataclass
class Context:
    """Handed to handlers through initialize(); one per running application."""

    settings: Settings
    run: Runner
    hash: Runner
    issuer: TokenIssuer
    broker: Broker
    hub: Hub
    notifier: HubNotifier
    auth: AuthService
    users: UserService
    alerts: AlertService
    health: HealthMonitor
    rooms: RoomService
    messages: MessageService
    inbound: Inbound
    channels: ChannelVerbs  # the channel verbs, also behind POST /api/v1/rooms/{name}/messages
    ws_connect_limiter: RateLimiter | None
    relay: Relay
    streams: StreamStore | None  # None for a broker that keeps its own stream state
    metrics: Metrics
    stats: ClusterStats  # GET /ws/stats: this node's counts, or every node's
    heartbeat: Heartbeat  # every socket's pings, pong deadlines and token expiry, one timer
    sse_pinger: SsePinger  # the `: ping` comment every SSE stream gets, on one timer
    loop_lag: LoopLag  # how late the event loop runs its timers (/metrics)
    apikeys: ApiKeyService  # the server API's keys: management and authentication
    server_api: ServerApi  # what /api/v1/server/... does
    origins: Origins  # browser origins allowed to call the API (CORS) and to open /ws
    hooks: Hooks  # the application's permission hooks (asks nothing without --hooks)
    webhooks: Webhooks  # the webhooks recorded and delivered (none without --webhook-url)
    hook_client: HookClient | None  # the HTTP client both share (None: neither is on)
    # The shared redis.asyncio.Redis client with --broker=redis (None with memory): the
    # broker's commands, and anything else a cluster keeps in Redis, go through it.
    redis: Any = None
    sweeper: PeriodicCallback | None = None  # the recovery log's sweep, once started

    async def start(self) -> None:
        """Restores the streams and publishes every unpublished outbox row (before serving);
        in a cluster, joins the shared presence and stats."""
        if self.streams is not None:
            await self.streams.load()
        # The recovery log trims a stream when it is used; this ages out every other one.
        self.sweeper = PeriodicCallback(self.broker.log.sweep, SWEEP_SECONDS * 1000)
        self.sweeper.start()
        await self.relay.start()
        await self.webhooks.start()
        self.server_api.start()
        if isinstance(self.hub.presence, RedisPresence):
            await self.hub.presence.start()
        await self.stats.start()

    async def leave_cluster(self) -> None:
        """Withdraws this node's presence entries and stats (after its sockets are closed)."""
        if isinstance(self.hub.presence, RedisPresence):
            await self.hub.presence.close()
        await self.stats.close()

    async def stop(self) -> None:
        """Flushes the relay's marks and room messages, then saves the streams (clean only if
        everything they numbered is stored); then writes the queued webhooks."""
        self.server_api.stop()
        if self.sweeper is not None:
            self.sweeper.stop()
        feed_clean = await self.relay.close()
        await self.messages.close()
        if self.streams is not None:
            await self.streams.save_clean(feed_clean=feed_clean,
                                          rooms_clean=not self.messages.lost)
        await self.leave_cluster()
        await self.webhooks.close()  # after the last sweep, which may have found lost nodes
        if self.hook_client is not None:
            await self.hook_client.close()

    def rate_limiters(self) -> Iterator[RateLimiter]:
        """Yields every rate limiter, named, for the metrics collector."""
        if self.ws_connect_limiter is not None:
            yield self.ws_connect_limiter
        # Found by attribute, so LoginLimits needs no metrics code of its own.
        for value in vars(self.auth.limits).values():
            if isinstance(value, RateLimiter):
                yield value

    def shutdown_pools(self) -> None:
        """Stops the database and hashing thread pools after their running jobs."""
        self.run.shutdown()
        self.hash.shutdown()
