"""Login throttling that an attacker cannot turn into a lockout of the account's owner."""

from __future__ import annotations

import ipaddress
import time

import pytest

LOGIN = "/api/v1/auth/login"
PROXY = (ipaddress.ip_network("127.0.0.1/32"),)


async def _login(api, email: str, password: str, ip: str) -> tuple[int, dict, dict]:
    """Logs in as if from ip (the test server trusts the loopback proxy)."""
    return await api.call("POST", LOGIN, {"email": email, "password": password},
                          headers={"X-Forwarded-For": ip})


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(trusted_proxies=PROXY)
async def test_attacker_is_locked_out_while_the_owner_still_logs_in(api):
    """Five wrong guesses lock the guessing address out of the account; the owner gets in."""
    api.ctx.auth.limits.slowdown_base = api.ctx.auth.limits.slowdown_cap = 0.05
    await api.register(email="owner@example.com")
    for _ in range(5):
        assert (await _login(api, "owner@example.com", "wrongpass1", "203.0.113.66"))[0] == 401
    status, parsed, headers = await _login(api, "owner@example.com", "password123",
                                           "203.0.113.66")
    assert status == 429 and int(headers["Retry-After"]) > 0, parsed
    status, parsed, _ = await _login(api, "owner@example.com", "password123", "198.51.100.10")
    assert status == 200, parsed


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(trusted_proxies=PROXY)
async def test_distributed_guesses_slow_the_account_down_without_locking_it(api):
    """Failures from many addresses delay further attempts on the account, but never refuse."""
    limits = api.ctx.auth.limits
    limits.slowdown_base, limits.slowdown_cap = 0.2, 0.4
    await api.register(email="target@example.com")
    for i in range(6):  # one guess each from six addresses: no pair is over its budget
        status, _, _ = await _login(api, "target@example.com", "wrongpass1", f"203.0.113.{i}")
        assert status == 401
    assert await limits.delay("target@example.com") == pytest.approx(0.4)
    started = time.monotonic()
    status, parsed, _ = await _login(api, "target@example.com", "password123", "198.51.100.9")
    assert status == 200, parsed
    assert time.monotonic() - started >= 0.4  # the owner waited, and then got in
    assert await limits.delay("target@example.com") == 0  # and the success cleared the slowdown


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(trusted_proxies=PROXY)
async def test_one_address_spraying_accounts_is_throttled(api):
    """More than 30 attempts a minute from one address get 429, across any accounts."""
    statuses = [(await _login(api, f"nobody{i}@example.com", "wrongpass1", "203.0.113.99"))[0]
                for i in range(31)]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429
    assert (await _login(api, "nobody@example.com", "wrongpass1", "203.0.113.100"))[0] == 401
