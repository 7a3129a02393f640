"""GET /health: ok with a working database, 503 and "error" when the database fails."""

from __future__ import annotations

import pytest

import services.health


@pytest.mark.gen_test
async def test_health_ok(api):
    """With the database reachable, /health answers 200 with every check ok."""
    status, parsed, headers = await api.call("GET", "/health")
    assert status == 200
    assert parsed == {"status": "ok", "checks": {"database": "ok"}}
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.gen_test
async def test_health_reports_database_failure(api, monkeypatch):
    """When the database check raises, /health answers 503 with status and database "error"."""

    def broken() -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(services.health, "_ping_database", broken)
    status, parsed, _ = await api.call("GET", "/health")
    assert status == 503
    assert parsed == {"status": "error", "checks": {"database": "error"}}


@pytest.mark.gen_test
async def test_health_recovers_when_the_database_returns(api, monkeypatch):
    """After a failure, /health answers 200 again as soon as the database check passes."""
    monkeypatch.setattr(services.health, "_ping_database", lambda: 1 / 0)
    assert (await api.call("GET", "/health"))[0] == 503
    monkeypatch.undo()
    status, parsed, _ = await api.call("GET", "/health")
    assert status == 200 and parsed["status"] == "ok"


@pytest.mark.gen_test
async def test_health_needs_no_token(api):
    """/health answers without authentication, so load balancers can probe it."""
    status, _, _ = await api.call("GET", "/health", headers={"Authorization": "Bearer junk"})
    assert status == 200


@pytest.mark.gen_test
async def test_health_times_out_a_hung_database(api, monkeypatch):
    """A database check that hangs past the timeout answers 503 instead of hanging /health."""
    import threading

    release = threading.Event()
    monkeypatch.setattr(services.health, "_ping_database", lambda: release.wait(5))
    monkeypatch.setattr(api.ctx.health, "timeout", 0.2)
    try:
        status, parsed, _ = await api.call("GET", "/health")
    finally:
        release.set()
    assert status == 503 and parsed["checks"]["database"] == "error"
