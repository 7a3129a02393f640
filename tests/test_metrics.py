"""GET /metrics: the exposition parses, counters move when things happen, access is guarded."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from conftest import Api, next_event
from prometheus_client.parser import text_string_to_metric_families
from test_hub import FakeConn
from tornado.httpclient import AsyncHTTPClient
from wsutil import reject, wait_until

from app import make_hub, routes
from auth.ratelimit import RateLimiter
from hub.broker import MemoryBroker
from hub.client import Client
from hub.events import Event, EventType
from hub.messages import ALL
from services.delivery import DeliveryWindow, percentile
from services.metrics import Metrics, Sources, close_label, route_label


def value(api: Api, name: str, **labels: str) -> float:
    """Returns one sample of the application's registry (0.0 when it does not exist yet)."""
    return api.ctx.metrics.registry.get_sample_value(name, labels) or 0.0


async def scrape(api: Api, token: str | None = None) -> tuple[int, str]:
    """GETs /metrics; returns the status and the body as text."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await AsyncHTTPClient().fetch(api.base_url + "/metrics", headers=headers,
                                             raise_error=False)
    return response.code, response.body.decode()


def families(text: str) -> dict[str, object]:
    """Parses an exposition with prometheus-client's own parser; returns families by name."""
    return {family.name: family for family in text_string_to_metric_families(text)}


# -- the exposition ---------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_exposition_parses_and_holds_every_documented_family(api):
    """From loopback /metrics answers 200 with text that prometheus-client's parser accepts."""
    user = await api.register()
    (await api.ws(user["access_token"])).close()
    status, text = await scrape(api)
    assert status == 200
    found = families(text)
    for name in ("events_connections", "events_connections_opened", "events_connections_closed",
                 "events_handshake_failures", "events_published", "events_messages_delivered",
                 "events_delivery_latency_seconds", "events_slow_consumers_dropped",
                 "events_inbound_messages", "events_inbound_errors", "events_http_requests",
                 "events_http_request_duration_seconds", "events_pool_queue_length",
                 "events_pool_job_duration_seconds", "events_health_ok",
                 "events_rate_limit_rejections", "process_cpu_seconds", "python_info",
                 "python_gc_collections"):
        assert name in found, name
    assert value(api, "events_health_ok") == 1


@pytest.mark.gen_test
async def test_connection_open_and_client_close_are_counted_by_code(api):
    """Opening a socket moves the opened counter and role gauge; a 1000 close is counted."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    assert value(api, "events_connections_opened_total", transport="websocket") == 1
    assert value(api, "events_connections", role="user") == 1
    conn.close(1000)
    await wait_until(lambda: value(api, "events_connections_closed_total", code="1000",
                                   transport="websocket") == 1)
    assert value(api, "events_connections", role="user") == 0


@pytest.mark.gen_test
async def test_server_close_is_counted_by_the_code_it_sent(api):
    """A socket the server closes (the hub's 1001 on shutdown) is counted under 1001."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    api.ctx.hub.close_all((1001, "server shutting down"))
    assert await conn.read_message() is None
    await wait_until(lambda: value(api, "events_connections_closed_total", code="1001",
                                   transport="websocket") == 1)


@pytest.mark.gen_test
async def test_publish_counts_by_type_and_observes_latency_once(api):
    """A broadcast to three sockets counts one publish, three deliveries and one observation."""
    admin = await api.admin()
    conns = [await api.ws(admin["access_token"]) for _ in range(3)]
    # user.created on register and user.online to the admin came before
    observed = value(api, "events_delivery_latency_seconds_count")
    delivered = value(api, "events_messages_delivered_total")
    status, _, _ = await api.call("POST", "/ws/broadcast", {"message": "hi"},
                                  token=admin["access_token"])
    assert status == 200
    assert value(api, "events_published_total", type="system.alert") == 1
    assert value(api, "events_messages_delivered_total") == delivered + 3
    assert value(api, "events_delivery_latency_seconds_count") == observed + 1
    status, stats, _ = await api.call("GET", "/ws/stats", token=admin["access_token"])
    assert stats["total_clients"] == 3 and stats["messages_delivered"] == delivered + 3
    assert stats["delivery"]["publishes"] == observed + 1
    assert stats["delivery"]["latency_ms"]["p99"] > 0
    for conn in conns:
        conn.close()


def test_slow_consumer_drop_is_counted_and_observed_once_per_publish():
    """A fan-out that drops one slow consumer counts one drop and observes latency once."""
    hub = make_hub(MemoryBroker())
    hub.presence.attach(lambda *args: None)  # no user.online publishes in this count
    metrics = Metrics(Sources(hub, SimpleNamespace(status="ok", checks={})))
    hub.observe_delivery = metrics.observe_delivery
    conns = [FakeConn() for _ in range(4)] + [FakeConn(backlog=(10_000, 0))]
    for user_id, conn in enumerate(conns):
        hub.register(Client(conn, user_id, "user", f"s{user_id}", 0))
    assert hub.publish(Event(EventType.SYSTEM_ALERT, {"message": "x"}), ALL) == 4
    sample = metrics.registry.get_sample_value
    assert sample("events_slow_consumers_dropped_total") == 1
    assert sample("events_messages_delivered_total") == 4
    assert sample("events_delivery_latency_seconds_count") == 1
    assert conns[-1].closed == [(1013, "slow consumer")]


# -- handshakes, limits, inbound, HTTP ---------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.settings(rate_limits=True, ws_connect_rate=1)
async def test_connect_limit_429_counts_a_rejection_and_a_handshake_failure(api):
    """A 429 from the per-IP connect limiter counts under its limiter and as a refused upgrade."""
    user = await api.register()
    await api.ws(user["access_token"])
    status, _, _ = await reject(f"{api.ws_url}/ws?token={user['access_token']}")
    assert status == 429
    assert value(api, "events_rate_limit_rejections_total", limiter="ws_connect") == 1
    assert value(api, "events_handshake_failures_total", reason="rate_limited") == 1
    status, text = await scrape(api)
    limiters = {s.labels["limiter"] for s in families(text)["events_rate_limit_rejections"].samples}
    assert limiters == {"ws_connect", *(f"auth_{name}" for name, value in
                                        vars(api.ctx.auth.limits).items()
                                        if isinstance(value, RateLimiter))}
    assert "auth_per_ip" in limiters


@pytest.mark.gen_test
async def test_refused_upgrades_are_counted_by_reason(api):
    """A missing token and a foreign Origin are counted as unauthorized and origin_not_allowed."""
    user = await api.register()
    assert (await reject(f"{api.ws_url}/ws"))[0] == 401
    url = f"{api.ws_url}/ws?token={user['access_token']}"
    assert (await reject(url, {"Origin": "https://evil.example"}))[0] == 403
    assert value(api, "events_handshake_failures_total", reason="unauthorized") == 1
    assert value(api, "events_handshake_failures_total", reason="origin_not_allowed") == 1


@pytest.mark.gen_test
async def test_inbound_messages_are_counted_by_verb_and_errors_by_code(api):
    """Bad JSON and an unknown verb count under fixed verb labels and their error codes."""
    user = await api.register()
    conn = await api.ws(user["access_token"])
    conn.write_message("not json")
    conn.write_message(json.dumps({"type": "user-42-secret-verb"}))
    replies = [json.loads(await conn.read_message()) for _ in range(2)]
    assert [r["data"]["code"] for r in replies] == ["invalid_json", "unknown_type"]
    assert value(api, "events_inbound_messages_total", verb="invalid") == 1
    assert value(api, "events_inbound_messages_total", verb="unknown") == 1
    assert value(api, "events_inbound_errors_total", code="invalid_json") == 1
    assert value(api, "events_inbound_errors_total", code="unknown_type") == 1
    conn.write_message("still not json")  # the verb's counter is kept, not made again
    assert json.loads(await conn.read_message())["data"]["code"] == "invalid_json"
    assert value(api, "events_inbound_messages_total", verb="invalid") == 2
    assert value(api, "events_inbound_errors_total", code="invalid_json") == 2
    conn.close()


@pytest.mark.gen_test
async def test_http_requests_are_counted_by_route_pattern_never_raw_path(api):
    """Requests are labelled by route pattern, method and status; ids and paths never appear."""
    admin = await api.admin()
    user = await api.register(email="cardinality-check@example.com")
    user_id = user["user"]["id"]
    status, _, _ = await api.call("GET", f"/api/v1/users/{user_id}", token=admin["access_token"])
    assert status == 200
    assert (await api.call("GET", "/no/such/path-9876"))[0] == 404
    conn = await api.ws(user["access_token"])
    conn.write_message(json.dumps({"type": "auth.refresh", "data": {"token": "x"}}))
    assert await conn.read_message() is None
    assert value(api, "events_http_requests_total", route="/api/v1/users/{id}", method="GET",
                 status="200") == 1
    assert value(api, "events_http_requests_total", route="unmatched", method="GET",
                 status="404") == 1
    assert (await api.call("GET", "/no/such/other-path"))[0] == 404  # same labels, same series
    assert value(api, "events_http_requests_total", route="unmatched", method="GET",
                 status="404") == 2
    status, text = await scrape(api)
    allowed_routes = {route_label(r[0]) for r in routes(api.ctx)} | {"unmatched", "other"}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("events_"):
            continue  # process_*/python_* have their own fixed labels (generation="2", ...)
        for sample in family.samples:
            for name, label in sample.labels.items():
                assert str(user_id) != label and "@" not in label, (sample, name)
                assert "9876" not in label and "path" not in label, sample
                if name == "route":
                    assert label in allowed_routes, label
    assert "user_id" not in text and "channel=" not in text


@pytest.mark.gen_test
async def test_pools_report_queue_length_and_job_latency(api):
    """Registering runs jobs on both pools: each pool's job histogram counts and queue is 0."""
    await api.register()
    assert value(api, "events_pool_job_duration_seconds_count", pool="db") >= 1
    assert value(api, "events_pool_job_duration_seconds_count", pool="hash") >= 1
    await api.ctx.relay.flush()  # the outbox's write-behind mark of user.created, if in flight
    assert value(api, "events_pool_queue_length", pool="db") == 0
    api.ctx.health.status, api.ctx.health.checks = "error", {"database": "error"}
    assert value(api, "events_health_ok") == 0
    assert value(api, "events_health_check_ok", check="database") == 0


# -- small parts -------------------------------------------------------------------------------


def test_labels_are_bounded():
    """Close codes outside the table and route groups collapse to fixed label values."""
    assert close_label(None) == "none" and close_label(1013) == "1013"
    assert close_label(4321) == "other"
    assert route_label(r"/api/v1/users/([0-9]{1,18})/role") == "/api/v1/users/{id}/role"


def test_delivery_window_reports_percentiles_and_forgets_old_samples():
    """The dashboard's window gives nearest-rank percentiles and drops samples past its age."""
    now = [0.0]
    window = DeliveryWindow(seconds=60, clock=lambda: now[0])
    for ms in range(1, 101):
        window.add(ms / 1000)
    summary = window.summary()
    assert summary["publishes"] == 100
    assert summary["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    now[0] = 61.0
    window.add(0.002)
    assert window.summary()["publishes"] == 1
    assert percentile([], 0.5) == 0.0


@pytest.mark.gen_test
async def test_runner_counts_queued_jobs_and_forgets_cancelled_ones():
    """A one-thread pool reports jobs waiting behind a busy worker, and 0 once they are gone."""
    import asyncio
    import threading

    from models.db import Runner

    runner = Runner(1, name="t", database=False)
    seconds: list[float] = []
    runner.observe_job = seconds.append
    gate = threading.Event()
    try:
        busy = asyncio.ensure_future(runner(gate.wait, 10))
        waiting = [asyncio.ensure_future(runner(lambda: 1)) for _ in range(2)]
        await wait_until(lambda: runner.queued == 2)
        waiting[1].cancel()
        await wait_until(lambda: runner.queued == 1)
        gate.set()
        assert await busy is True and await waiting[0] == 1
        assert runner.queued == 0 and len(seconds) == 3
    finally:
        gate.set()
        runner.shutdown()


@pytest.mark.gen_test
async def test_operations_doc_and_grafana_dashboard_match_the_exposition(api):
    """Every events_* family is explained in docs/operations.md; Grafana queries only those."""
    import os
    import re

    from app import ROOT

    status, text = await scrape(api)
    # prometheus-client also writes each counter's and histogram's creation time (*_created).
    names = {n for n in families(text) if n.startswith("events_") and not n.endswith("_created")}
    with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as fh:
        doc = fh.read()
    missing = [n for n in sorted(names) if f"`{n}" not in doc]
    assert not missing, missing
    with open(os.path.join(ROOT, "docs", "grafana-dashboard.json"), encoding="utf-8") as fh:
        dashboard = json.load(fh)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(total|bucket|count|sum)$", "", m)
            for e in exprs for m in re.findall(r"\bevents_[a-z_]+", e)}
    assert used and used <= names, used - names
    assert "grafana-dashboard.json" in doc


@pytest.mark.gen_test
async def test_subscriptions_and_presence_gauges_follow_the_rooms(api):
    """Two sockets of one user in the lobby: 2 subscriptions, 1 active channel, 1 user present."""
    user = await api.register()
    conns = [await api.ws(user["access_token"]) for _ in range(2)]
    for n, conn in enumerate(conns):
        await conn.write_message(
            f'{{"id": {n + 1}, "type": "subscribe", "data": {{"channel": "room:lobby"}}}}')
        while (await next_event(conn))["type"] != "reply":
            pass
    assert value(api, "events_subscriptions") == 2
    assert value(api, "events_channels_active") == 1
    assert value(api, "events_users_present") == 1
    conns[0].close()
    await wait_until(lambda: value(api, "events_subscriptions") == 1)
    assert value(api, "events_users_present") == 1


@pytest.mark.gen_test(timeout=30)
async def test_the_event_loop_lag_is_measured_and_reported_at_its_worst(api):
    """A loop blocked for 0.6 s shows as lag (at least the block less one 0.25 s timer
    period) at the next scrape, and not at the one after."""
    import time

    lag = api.ctx.loop_lag
    lag.start()
    try:
        await asyncio.sleep(0.3)
        time.sleep(0.6)  # the loop is stuck: the timer due meanwhile runs late
        await asyncio.sleep(0.4)
        worst = value(api, "events_loop_lag_seconds")
        assert 0.3 <= worst < 1.5, worst
        await asyncio.sleep(0.6)
        assert value(api, "events_loop_lag_seconds") < 0.2
    finally:
        lag.stop()
