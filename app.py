"""Builds the Tornado application: shared context, route table and settings."""

from __future__ import annotations

import os
from dataclasses import dataclass

import tornado.web

from auth.jwt import TokenIssuer, load_or_create_secret
from auth.ratelimit import RateLimiter
from config import Settings
from handlers import admin, auth, health, pages, users, ws
from handlers.access_log import log_request
from handlers.base import NotFoundHandler
from handlers.edge import EdgeApplication
from hub.hub import Hub
from hub.notify import HubNotifier
from models.db import Runner
from services.alerts import AlertService
from services.auth import AuthService, LoginLimits
from services.health import HealthMonitor
from services.users import UserService

__all__ = ["Context", "make_context", "make_app", "routes", "ROOT"]

ROOT = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Context:
    """Handed to handlers through initialize(); one per running application."""

    settings: Settings
    run: Runner
    hash: Runner
    issuer: TokenIssuer
    hub: Hub
    notifier: HubNotifier
    auth: AuthService
    users: UserService
    alerts: AlertService
    health: HealthMonitor
    ws_connect_limiter: RateLimiter | None

    def shutdown_pools(self) -> None:
        """Stops the database and hashing thread pools after their running jobs."""
        self.run.shutdown()
        self.hash.shutdown()


def make_context(settings: Settings, hub: Hub | None = None) -> Context:
    """Wires settings, the thread pool, the hub and the services (the database must be bound)."""
    secret = settings.jwt_secret or load_or_create_secret(settings.data_dir)
    issuer = TokenIssuer(secret, settings.issuer, settings.audience,
                         settings.access_token_ttl, settings.refresh_token_ttl)
    run = Runner(settings.db_workers)
    hash_ = Runner(settings.hash_workers, name="hash", nice=10, database=False)
    hub = hub or Hub()
    notifier = HubNotifier(hub)
    limiter = RateLimiter(settings.ws_connect_rate, 60) if settings.rate_limits else None
    return Context(
        settings=settings,
        run=run,
        hash=hash_,
        issuer=issuer,
        hub=hub,
        notifier=notifier,
        auth=AuthService(run, hash_, issuer, notifier, LoginLimits(settings.rate_limits)),
        users=UserService(run, notifier),
        alerts=AlertService(notifier),
        health=HealthMonitor(run, notifier, settings.health_interval),
        ws_connect_limiter=limiter,
    )


def routes(ctx: Context) -> list[tuple]:
    """Returns the route table; every handler gets the context through initialize()."""
    c = {"ctx": ctx}
    return [
        (r"/api/v1/auth/register", auth.RegisterHandler, c),
        (r"/api/v1/auth/login", auth.LoginHandler, c),
        (r"/api/v1/auth/refresh", auth.RefreshHandler, c),
        (r"/api/v1/auth/logout", auth.LogoutHandler, c),
        (r"/api/v1/users/me", users.MeHandler, c),
        (r"/api/v1/users/me/password", users.MePasswordHandler, c),
        (r"/api/v1/users", admin.UsersHandler, c),
        (r"/api/v1/users/([0-9]{1,18})", admin.UserHandler, c),
        (r"/api/v1/users/([0-9]{1,18})/role", admin.UserRoleHandler, c),
        (r"/ws", ws.EventSocketHandler, c),
        (r"/ws/stats", ws.StatsHandler, c),
        (r"/ws/broadcast", ws.BroadcastHandler, c),
        (r"/health", health.HealthHandler, c),
        (r"/", pages.DashboardHandler, c),
        (r"/test", pages.TestClientHandler, c),
    ]


def make_app(ctx: Context) -> tornado.web.Application:
    """Returns the application for a context."""
    s = ctx.settings
    return EdgeApplication(
        routes(ctx),
        trusted_proxies=s.trusted_proxies,
        body_limit=s.max_body_size,
        hsts=s.hsts,
        template_path=os.path.join(ROOT, "templates"),
        static_path=os.path.join(ROOT, "static"),
        websocket_ping_interval=s.ping_interval,
        websocket_ping_timeout=s.ping_timeout,
        websocket_max_message_size=s.max_message_size,
        log_function=log_request,
        debug=s.debug,
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
    )
