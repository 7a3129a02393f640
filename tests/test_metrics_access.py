"""Who may read /metrics: allowed addresses, admin tokens, the metrics port; the options."""

from __future__ import annotations

import ipaddress

import pytest
from test_metrics import families, scrape
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from app import make_metrics_app

ELSEWHERE = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.gen_test
@pytest.mark.settings(metrics_allow=ELSEWHERE)
async def test_outside_the_allowlist_only_an_admin_token_reads_metrics(api):
    """Outside --metrics-allow: no token 403, a user's token 403, a bad token 401, admin 200."""
    user, admin = await api.register(), await api.admin()
    assert (await scrape(api))[0] == 403
    assert (await scrape(api, user["access_token"]))[0] == 403
    assert (await scrape(api, "not-a-token"))[0] == 401
    status, text = await scrape(api, admin["access_token"])
    assert status == 200 and "events_connections" in families(text)


@pytest.mark.gen_test
@pytest.mark.settings(metrics_port=1)
async def test_metrics_port_serves_without_auth_and_main_port_answers_404(api):
    """With --metrics-port the main port answers 404 and the separate listener serves anyone."""
    assert (await scrape(api))[0] == 404
    sock, port = bind_unused_port()
    server = HTTPServer(make_metrics_app(api.ctx))
    server.add_sockets([sock])
    try:
        client = AsyncHTTPClient()
        response = await client.fetch(HTTPRequest(f"http://127.0.0.1:{port}/metrics"))
        assert response.code == 200 and "events_health_ok" in families(response.body.decode())
        other = await client.fetch(f"http://127.0.0.1:{port}/ws/stats", raise_error=False)
        assert other.code == 404
    finally:
        server.stop()


@pytest.mark.gen_test
@pytest.mark.settings(metrics=False)
async def test_metrics_off_answers_404_and_observes_nothing(api):
    """With --metrics=off /metrics answers 404 and the hub has no latency observer."""
    assert (await scrape(api))[0] == 404
    assert api.ctx.hub.observe_delivery is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.1.2.3", False), ("::2", False), ("garbage", False), ("", False)],
)
def test_address_allowed_matches_addresses_and_cidrs(address, allowed):
    """The default allowlist admits loopback (IPv4, IPv6 and v4-mapped) and nothing else."""
    from config import LOOPBACK
    from handlers.metrics import address_allowed

    assert address_allowed(address, LOOPBACK) is allowed


def test_metrics_options_parse_and_refuse_bad_values():
    """--metrics-allow takes addresses and CIDRs; bad networks, formats and ports exit 2."""
    from config import parse_args

    _, settings, _ = parse_args(["--metrics-allow=10.0.0.0/8, 192.168.1.5,::1",
                                 "--metrics-port=9100", "--log-format=JSON"], environ={})
    assert [str(n) for n in settings.metrics_allow] == ["10.0.0.0/8", "192.168.1.5/32", "::1/128"]
    assert settings.metrics_port == 9100 and settings.log_format == "json"
    _, settings, _ = parse_args([], environ={"METRICS": "off", "METRICS_ALLOW": "10.1.0.0/16"})
    assert settings.metrics is False and str(settings.metrics_allow[0]) == "10.1.0.0/16"
    for argv in (["--metrics-allow=10.0.0.300"], ["--log-format=xml"],
                 ["--port=8080", "--metrics-port=8080"]):
        with pytest.raises(SystemExit) as info:
            parse_args(argv, environ={})
        assert info.value.code == 2, argv
