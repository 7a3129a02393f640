"""Prometheus metrics: one registry per application, its instruments and scrape-time readers.

Hot paths stay cheap: the hub, the rate limiters, the pools and the health monitor keep plain
numbers and a collector reads them when Prometheus scrapes. Only per-publish, per-request and
per-connection events touch a prometheus instrument, never per recipient of a fan-out.
Every label has a fixed, small set of values: never a user id, a channel or a raw path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.disconnect import LABELLED_CODES
from hub.presence import ONLINE
from services.delivery import DeliveryWindow

if TYPE_CHECKING:
    from auth.ratelimit import RateLimiter
    from hub.hub import Hub
    from models.db import Runner
    from services.health import HealthMonitor

__all__ = ["Metrics", "NullMetrics", "Sources", "close_label", "route_label", "CLOSE_CODES"]

# Publish-to-write latency: a single recipient takes microseconds, 10k about 100 ms.
DELIVERY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
JOB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Close codes worth a label of their own (docs/websocket.md); anything else is "other".
CLOSE_CODES = LABELLED_CODES
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def close_label(code: int | None) -> str:
    """Returns the close-code label: a known code, "none" when no code was exchanged, or "other".

    "none" covers a peer that vanished (RFC 6455's 1006) and a close frame without a code (1005).
    """
    if code is None:
        return "none"
    return str(code) if code in CLOSE_CODES else "other"


def route_label(pattern: str) -> str:
    """Returns a route regex as a label: /api/v1/users/([0-9]{1,18}) -> /api/v1/users/{id}."""
    out, depth = [], 0
    for char in pattern:
        if char == "(":
            if depth == 0:
                out.append("{id}")
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


@dataclass
class Sources:
    """What the scrape-time collector reads: the hub, limiters, pools and health."""

    hub: Hub
    health: HealthMonitor
    pools: dict[str, Runner] = field(default_factory=dict)
    limiters: Callable[[], Iterable[RateLimiter]] = lambda: ()
    # The event loop's worst lag since the last scrape, seconds (edge/looplag.py).
    loop_lag: Callable[[], float] = lambda: 0.0


class StateCollector(Collector):
    """Reads the application's plain counters and gauges at scrape time (zero hot-path cost)."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        """Yields the current values of the hub, limiters, pools and health as metric families."""
        hub = self.sources.hub
        conns = GaugeMetricFamily("events_connections", "Open connections by role",
                                  labels=["role"])
        for role, clients in sorted(hub.by_role.items()):
            conns.add_metric([role], len(clients))
        yield conns
        yield GaugeMetricFamily("events_loop_lag_seconds",
                                "Worst delay of the event loop's timers since the last scrape",
                                value=self.sources.loop_lag())
        transports = GaugeMetricFamily("events_connections_by_transport",
                                       "Open connections by transport", labels=["transport"])
        transports.add_metric(["websocket"], len(hub.clients) - hub.sse_clients)
        transports.add_metric(["sse"], hub.sse_clients)
        yield transports
        yield GaugeMetricFamily("events_users_connected",
                                "Users with at least one open connection", value=len(hub.by_user))
        yield GaugeMetricFamily("events_subscriptions",
                                "Channel subscriptions held by open connections",
                                value=sum(len(c) for c in hub.by_channel.values()))
        yield GaugeMetricFamily("events_channels_active",
                                "Channels with at least one subscribed connection",
                                value=len(hub.by_channel))
        yield GaugeMetricFamily("events_users_present",
                                "Users online (presence, the 5 s grace included)",
                                value=len(hub.presence.members(ONLINE)))
        published = CounterMetricFamily("events_published", "Events published, by event type",
                                        labels=["type"])
        for type_, count in sorted(hub.published_by_type.items()):
            published.add_metric([type_], count)
        yield published
        yield CounterMetricFamily("events_messages_delivered",
                                  "Messages written to sockets (one per recipient of a publish)",
                                  value=hub.messages_delivered)
        yield CounterMetricFamily("events_slow_consumers_dropped",
                                  "Connections closed with 1013 because their backlog was full",
                                  value=hub.slow_consumers_dropped)
        recovery = CounterMetricFamily(
            "events_recovery", "Resumes that named a position (since), by outcome",
            labels=["outcome"])
        for outcome, count in sorted(hub.recoveries.items()):
            recovery.add_metric([outcome], count)
        yield recovery
        yield CounterMetricFamily("events_replayed",
                                  "Missed events replayed to resuming connections",
                                  value=hub.events_replayed)
        rejected = CounterMetricFamily("events_rate_limit_rejections",
                                       "Attempts refused by a rate limiter", labels=["limiter"])
        for limiter in self.sources.limiters():
            rejected.add_metric([limiter.name or "unnamed"], limiter.rejected)
        yield rejected
        queue = GaugeMetricFamily("events_pool_queue_length",
                                  "Jobs waiting for a worker thread, by pool", labels=["pool"])
        for name, pool in self.sources.pools.items():
            queue.add_metric([name], pool.queued)
        yield queue
        health = self.sources.health
        yield GaugeMetricFamily("events_health_ok", "1 when /health answers ok, else 0",
                                value=1 if health.status == "ok" else 0)
        checks = GaugeMetricFamily("events_health_check_ok", "1 when a health check passes",
                                   labels=["check"])
        for name, value in sorted(health.checks.items()):
            checks.add_metric([name], 1 if value == "ok" else 0)
        yield checks


class Metrics:
    """The application's registry and instruments, with one method per thing that happens."""

    enabled = True

    def __init__(self, sources: Sources) -> None:
        self.registry = CollectorRegistry()
        self.delivery = DeliveryWindow()
        self.routes: dict[type, str] = {}
        # Labelled children by their label values (all from fixed sets): prometheus_client's
        # labels() takes a lock and builds a key on every call, and these run per message.
        self._http_children: dict[tuple[type, str, int], tuple[Any, Any]] = {}
        self._inbound_children: dict[str, Any] = {}
        # Labelled children of the connection counters (a few fixed labels: transports and
        # close-code labels), looked up once per connection instead of through labels().
        self._opened_children: dict[str, Any] = {}
        self._closed_children: dict[tuple[str, str], Any] = {}
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        reg.register(StateCollector(sources))
        self.delivery_seconds = Histogram(
            "events_delivery_latency_seconds",
            "Seconds from publish to the last local socket write, once per publish",
            buckets=DELIVERY_BUCKETS, registry=reg)
        self.opened = Counter("events_connections_opened",
                              "Connections opened, by transport (websocket, sse)", ["transport"],
                              registry=reg)
        self.closed = Counter("events_connections_closed",
                              "Connections closed, by close code and transport",
                              ["code", "transport"], registry=reg)
        self.handshake_failures = Counter(
            "events_handshake_failures", "WebSocket upgrades refused, by reason", ["reason"],
            registry=reg)
        self.inbound_messages = Counter("events_inbound_messages",
                                        "Client-to-server messages, by verb", ["verb"],
                                        registry=reg)
        self.inbound_errors = Counter("events_inbound_errors",
                                      "Error replies to client messages, by code", ["code"],
                                      registry=reg)
        self.http_requests = Counter("events_http_requests",
                                     "HTTP requests by route pattern, method and status",
                                     ["route", "method", "status"], registry=reg)
        self.http_seconds = Histogram("events_http_request_duration_seconds",
                                      "HTTP request latency by route pattern and method",
                                      ["route", "method"], buckets=HTTP_BUCKETS, registry=reg)
        self.job_seconds = Histogram("events_pool_job_duration_seconds",
                                     "Seconds from submitting a job to a pool to its result",
                                     ["pool"], buckets=JOB_BUCKETS, registry=reg)

    def exposition(self) -> bytes:
        """Returns every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    def set_routes(self, routes: Iterable[tuple[Any, ...]]) -> None:
        """Maps each handler class to its route pattern, the only route label there is."""
        for entry in routes:
            self.routes.setdefault(entry[1], route_label(entry[0]))

    def job_observer(self, pool: str) -> Callable[[float], None]:
        """Returns the hook a Runner calls with each job's seconds."""
        return self.job_seconds.labels(pool).observe

    # -- what happens ----------------------------------------------------------------------

    def observe_delivery(self, seconds: float) -> None:
        """Records one publish's latency from publish to the last local socket write."""
        self.delivery_seconds.observe(seconds)
        self.delivery.add(seconds)

    def request(self, handler_class: type, method: str, status: int, seconds: float) -> None:
        """Counts one HTTP request by route pattern (never the raw path), method and status."""
        key = (handler_class, method, status)
        pair = self._http_children.get(key)
        if pair is None:
            route = self.routes.get(handler_class, "other")
            label = method if method in METHODS else "other"
            pair = (self.http_requests.labels(route, label, str(status)),
                    self.http_seconds.labels(route, label))
            if label != "other":  # a client's made-up method is not a key worth keeping
                self._http_children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def connection_opened(self, transport: str = "websocket") -> None:
        """Counts one connection (WebSocket or SSE stream) registered with the hub."""
        child = self._opened_children.get(transport)
        if child is None:
            child = self._opened_children[transport] = self.opened.labels(transport)
        child.inc()

    def connection_closed(self, code: int | None, transport: str = "websocket") -> None:
        """Counts one connection closed with code (None: no close frame)."""
        label = close_label(code)
        child = self._closed_children.get((label, transport))
        if child is None:
            child = self._closed_children[label, transport] = self.closed.labels(label, transport)
        child.inc()
        self.delivery.closed(label)

    def handshake_failed(self, reason: str) -> None:
        """Counts one refused WebSocket upgrade by a fixed reason word."""
        self.handshake_failures.labels(reason).inc()

    def inbound(self, verb: str, error: str | None) -> None:
        """Counts one inbound message by verb, and its error reply by code."""
        child = self._inbound_children.get(verb)
        if child is None:
            child = self._inbound_children[verb] = self.inbound_messages.labels(verb)
        child.inc()
        if error is not None:
            self.inbound_errors.labels(error).inc()

    def delivery_summary(self) -> dict[str, object]:
        """Returns the dashboard's delivery numbers (services/delivery.py)."""
        return self.delivery.summary()


class NullMetrics(Metrics):
    """Metrics switched off (--metrics=off): nothing is observed and /metrics answers 404."""

    enabled = False

    def observe_delivery(self, seconds: float) -> None:
        """Observes nothing."""

    def request(self, handler_class: type, method: str, status: int, seconds: float) -> None:
        """Counts nothing."""

    def connection_opened(self, transport: str = "websocket") -> None:
        """Counts nothing."""

    def connection_closed(self, code: int | None, transport: str = "websocket") -> None:
        """Counts nothing."""

    def handshake_failed(self, reason: str) -> None:
        """Counts nothing."""

    def inbound(self, verb: str, error: str | None) -> None:
        """Counts nothing."""
