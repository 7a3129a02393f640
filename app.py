"""Builds the application: wires the context (context.py), the route table and settings."""

from __future__ import annotations

import functools
import os
from typing import Any

import tornado.web

from auth.external import ExternalVerifier
from auth.jwt import TokenIssuer, load_or_create_secret
from auth.ratelimit import RateLimiter
from auth.sharedlimit import SharedRateLimiter
from config import ConfigError, Settings
from context import Context
from edge.access_log import log_request
from edge.application import EdgeApplication, SafeStaticFileHandler
from edge.heartbeat import Heartbeat
from edge.looplag import LoopLag
from edge.origins import Origins, PreflightHandler
from edge.sse import SsePinger
from handlers import (
    admin,
    apidocs,
    auth,
    health,
    metrics,
    pages,
    rooms,
    serverapi,
    sse,
    users,
    ws,
    wsadmin,
)
from handlers.base import NotFoundHandler, TooLargeHandler
from handlers.clientlib import LIBRARY_ROUTE, ClientLibraryHandler
from hub.broker import Broker, MemoryBroker
from hub.history import MemoryLog
from hub.hub import Hub
from hub.nodestats import ClusterStats, LocalStats
from hub.notify import HubNotifier
from hub.presence import ONLINE
from hub.redis.presence import RedisPresence
from hub.redis.stats import RedisStats
from models.db import Runner
from services.alerts import AlertService
from services.apikeys import ApiKeyService
from services.auth import AuthService, LoginLimits
from services.channels import ChannelVerbs
from services.external import ClaimNames, ExternalUsers
from services.health import HealthMonitor
from services.hookmetrics import HookCollector
from services.hookwiring import attach_webhooks, make_hooks
from services.inbound import Inbound
from services.messages import MessageService
from services.metrics import Metrics, NullMetrics, Sources
from services.outbox import Relay
from services.rooms import RoomService
from services.serverapi import ServerApi
from services.sessions import SessionCache
from services.streams import StreamStore
from services.users import UserService

__all__ = [
    "Context", "make_context", "make_app", "make_metrics_app", "make_hub", "routes", "ROOT",
]  # Context is re-exported for callers that build and hold one (main.py, tests)

ROOT = os.path.dirname(os.path.abspath(__file__))


def make_hub(broker: Broker, **options: Any) -> Hub:
    """Returns a hub publishing through broker, with the broker delivering back into it."""
    hub = Hub(broker, **options)
    broker.attach(hub.handle)
    return hub


def make_redis(settings: Settings) -> tuple[Any, Any]:
    """Returns (shared client, pub/sub client) for --broker=redis, without connecting yet.

    The shared client retries a failed command twice, quickly; the pub/sub client never
    retries by itself, so the broker sees each lost connection and catches up after it.
    """
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
    except ImportError:  # pragma: no cover - it is in requirements.txt
        raise RuntimeError("--broker=redis needs the redis package: "
                           "pip install -r requirements.txt") from None
    common = {"socket_connect_timeout": 2.0, "socket_keepalive": True}
    shared = Redis.from_url(settings.redis_url, socket_timeout=5.0, **common,
                            retry=Retry(ExponentialWithJitterBackoff(0.5, 0.05), 2))
    listener = Redis.from_url(settings.redis_url, retry=Retry(NoBackoff(), 0), **common)
    return shared, listener


def make_broker(settings: Settings) -> tuple[Broker, Any]:
    """Returns the broker --broker asks for and the shared Redis client (None for memory)."""
    if settings.broker != "redis":
        return MemoryBroker(log=MemoryLog(settings.history_size, settings.history_ttl)), None
    from hub.redis.broker import RedisBroker

    shared, listener = make_redis(settings)
    return RedisBroker(shared, listener, settings.redis_prefix, settings.history_size,
                       settings.history_ttl), shared


def make_external(settings: Settings, run: Runner, notifier: HubNotifier,
                  relay: Relay) -> tuple[ExternalVerifier, ExternalUsers] | None:
    """Returns the identity provider's verifier and user mapping, if one is configured."""
    if not settings.jwt_jwks_url and not settings.jwt_public_key_file:
        return None
    public_key = ""
    if settings.jwt_public_key_file:
        try:
            with open(settings.jwt_public_key_file, encoding="ascii") as f:
                public_key = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--jwt-public-key-file: cannot read "
                              f"{settings.jwt_public_key_file}: {exc}") from None
    verifier = ExternalVerifier(jwks_url=settings.jwt_jwks_url, public_key=public_key,
                                issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    names = ClaimNames(settings.jwt_name_claim, settings.jwt_email_claim,
                       settings.jwt_role_claim)
    return verifier, ExternalUsers(run, notifier, relay, names, settings.session_cache_ttl)


async def _users_online(hub: Hub) -> int:
    """Returns how many users have a connection on some node of the cluster."""
    return sum(1 for m in await hub.presence.fetch(ONLINE) if m.connections > 0)


def make_context(settings: Settings, broker: Broker | None = None) -> Context:
    """Wires settings, the pools, the broker, the hub and the services (database bound).

    The context owns the broker: main.py starts it before serving and closes it on shutdown.
    """
    secret = settings.jwt_secret or load_or_create_secret(settings.data_dir)
    issuer = TokenIssuer(secret, settings.issuer, settings.audience,
                         settings.access_token_ttl, settings.refresh_token_ttl)
    run = Runner(settings.db_workers)
    hash_ = Runner(settings.hash_workers, name="hash", nice=10, database=False)
    redis = None
    if broker is None:
        broker, redis = make_broker(settings)
    presence = (RedisPresence(redis, settings.redis_prefix, broker.node_id)
                if redis is not None else None)
    hub = make_hub(broker, presence=presence)
    notifier = HubNotifier(hub)

    def make_limiter(limit: int, window: float, name: str) -> RateLimiter:
        if redis is None:
            return RateLimiter(limit, window, name=name)
        return SharedRateLimiter(limit, window, redis, settings.redis_prefix, name)

    limiter = (make_limiter(settings.ws_connect_rate, 60, "ws_connect")
               if settings.rate_limits else None)
    login_limits = LoginLimits(settings.rate_limits, make_limiter)
    stats: ClusterStats = LocalStats(hub, broker.node_id)
    if redis is not None:
        stats = RedisStats(hub, broker.node_id, redis, settings.redis_prefix,
                           users_online=functools.partial(_users_online, hub))
    relay = Relay(run, hub, settings.message_retention_days)
    streams = StreamStore(run, broker.log) if isinstance(broker.log, MemoryLog) else None
    sessions = SessionCache(settings.session_cache_ttl)
    hub.control_observers.append(sessions.apply)  # every node's revocations clear it
    apikeys = ApiKeyService(run, hub.control, settings.server_api_rate)
    hub.control_observers.append(apikeys.apply)  # a revoked key, forgotten on every node
    external = make_external(settings, run, notifier, relay)
    if external is not None:
        hub.control_observers.append(external[1].apply)  # a deleted user, forgotten at once
    auth_service = AuthService(run, hash_, issuer, notifier, login_limits, relay, sessions,
                               external)
    rooms_service = RoomService(run, notifier, settings.max_rooms_per_user)
    messages = MessageService(run, notifier, broker.node_id, settings.message_retention_days)
    hooks, webhooks, hook_client = make_hooks(settings, run, broker.node_id)
    attach_webhooks(webhooks, hub, relay, messages)
    verbs = ChannelVerbs(rooms_service, messages, hub.presence, hub.typing,
                         settings.max_subscriptions, broker.log,
                         streams.ready if streams is not None else None,
                         settings.inbound_rate, settings.inbound_burst, hooks=hooks)
    health_monitor = HealthMonitor(
        run, relay, settings.health_interval,
        broker_healthy=(lambda: broker.healthy) if broker.deferred else None)
    loop_lag = LoopLag()
    sources = Sources(hub, health_monitor, {"db": run, "hash": hash_},
                      loop_lag=loop_lag.read_worst)
    metrics_ = Metrics(sources) if settings.metrics else NullMetrics(sources)
    if metrics_.enabled:
        hub.observe_delivery = metrics_.observe_delivery
        metrics_.registry.register(HookCollector(hooks, webhooks.relay))
        run.observe_job = metrics_.job_observer("db")
        hash_.observe_job = metrics_.job_observer("hash")
    ctx = Context(
        settings=settings,
        run=run,
        hash=hash_,
        issuer=issuer,
        broker=broker,
        hub=hub,
        notifier=notifier,
        auth=auth_service,
        users=UserService(run, notifier, relay),
        alerts=AlertService(relay),
        health=health_monitor,
        rooms=rooms_service,
        messages=messages,
        channels=verbs,
        inbound=Inbound(auth_service, verbs.table(),
                        metrics_ if metrics_.enabled else None),
        ws_connect_limiter=limiter,
        relay=relay,
        streams=streams,
        metrics=metrics_,
        stats=stats,
        heartbeat=Heartbeat(settings.ping_interval, settings.ping_timeout),
        sse_pinger=SsePinger(settings.sse_ping_interval),
        loop_lag=loop_lag,
        apikeys=apikeys,
        server_api=ServerApi(run, hub, relay, messages,
                             streams.ready if streams is not None else None),
        origins=Origins(settings.cors_origins, settings.allowed_origins),
        hooks=hooks,
        webhooks=webhooks,
        hook_client=hook_client,
        redis=redis,
    )
    sources.limiters = ctx.rate_limiters
    return ctx


def upgrade_route(ctx: Context) -> tuple[str, type, dict[str, Any]]:
    """Returns the WebSocket route, which the server's upgrade lane also serves
    (edge/lane.py)."""
    return (r"/ws", ws.EventSocketHandler, {"ctx": ctx})


def routes(ctx: Context) -> list[tuple]:
    """Returns the route table; every handler gets the context through initialize()."""
    c = {"ctx": ctx}
    return [
        upgrade_route(ctx),  # first: the route matched most often in a storm
        (r"/api/v1/auth/register", auth.RegisterHandler, c),
        (r"/api/v1/auth/login", auth.LoginHandler, c),
        (r"/api/v1/auth/refresh", auth.RefreshHandler, c),
        (r"/api/v1/auth/logout", auth.LogoutHandler, c),
        (r"/api/v1/users/me", users.MeHandler, c),
        (r"/api/v1/users/me/password", users.MePasswordHandler, c),
        (r"/api/v1/users", admin.UsersHandler, c),
        (r"/api/v1/users/([0-9]{1,18})", admin.UserHandler, c),
        (r"/api/v1/users/([0-9]{1,18})/role", admin.UserRoleHandler, c),
        (r"/api/v1/rooms", rooms.RoomsHandler, c),
        (r"/api/v1/rooms/([a-z0-9_.-]{1,64})", rooms.RoomHandler, c),
        (r"/api/v1/rooms/([a-z0-9_.-]{1,64})/members", rooms.RoomMembersHandler, c),
        (r"/api/v1/rooms/([a-z0-9_.-]{1,64})/members/([0-9]{1,18})", rooms.RoomMemberHandler, c),
        (r"/api/v1/rooms/([a-z0-9_.-]{1,64})/messages", rooms.RoomMessagesHandler, c),
        (r"/api/v1/presence", rooms.PresenceHandler, c),
        (r"/api/v1/server/notify", serverapi.NotifyHandler, c),
        (r"/api/v1/server/publish", serverapi.PublishHandler, c),
        (r"/api/v1/server/presence", serverapi.ServerPresenceHandler, c),
        (r"/api/v1/server/history", serverapi.ServerHistoryHandler, c),
        (r"/api/v1/server/disconnect", serverapi.DisconnectHandler, c),
        (r"/api/v1/admin/api-keys", serverapi.ApiKeysHandler, c),
        (r"/api/v1/admin/api-keys/([0-9]{1,18})", serverapi.ApiKeyHandler, c),
        (r"/sse", sse.SseHandler, c),
        (r"/ws/stats", wsadmin.StatsHandler, c),
        (r"/ws/broadcast", wsadmin.BroadcastHandler, c),
        (r"/health", health.HealthHandler, c),
        (r"/metrics", metrics.MetricsHandler, c),
        (r"/api/v1/openapi.json", apidocs.OpenApiHandler, c),
        (r"/", pages.DashboardHandler, c),
        (r"/test", pages.TestClientHandler, c),
        (r"/docs", apidocs.DocsHandler, c),
        (LIBRARY_ROUTE, ClientLibraryHandler),
    ]


def make_app(ctx: Context) -> tornado.web.Application:
    """Returns the application for a context."""
    s = ctx.settings
    table = routes(ctx)
    ctx.metrics.set_routes(table)
    ctx.metrics.set_routes([("unmatched", NotFoundHandler),
                            ("/static/{path}", SafeStaticFileHandler),
                            ("too_large", TooLargeHandler), ("preflight", PreflightHandler)])
    return EdgeApplication(
        table,
        trusted_proxies=s.trusted_proxies,
        body_limit=s.max_body_size,
        hsts=s.hsts,
        too_large_handler=TooLargeHandler,
        origins=ctx.origins,
        template_path=os.path.join(ROOT, "templates"),
        static_path=os.path.join(ROOT, "static"),
        websocket_ping_interval=s.ping_interval,
        websocket_ping_timeout=s.ping_timeout,
        websocket_max_message_size=s.max_message_size,
        log_function=functools.partial(log_request, recorder=ctx.metrics),
        debug=s.debug,
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
    )


def make_metrics_app(ctx: Context, internal: bool = False) -> tornado.web.Application:
    """Returns the application for --metrics-port: /metrics alone, without auth (internal:
    a --workers worker's loopback listener, its own registry alone)."""
    options = {"ctx": ctx, "dedicated": True, "internal": internal}
    return tornado.web.Application(
        [(r"/metrics", metrics.MetricsHandler, options)],
        log_function=functools.partial(log_request, recorder=None),
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
    )
