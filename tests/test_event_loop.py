"""The event loop stays responsive while password hashing (a blocking job) is running."""

from __future__ import annotations

import asyncio
import threading

import pytest

from auth import passwords

WAIT_SECONDS = 10


@pytest.mark.gen_test(timeout=30)
async def test_health_answers_while_a_login_is_hashing(api, monkeypatch):
    """A concurrent GET /health returns 200 while a login's password check is still blocked."""
    await api.register(email="amy@example.com")
    entered = threading.Event()  # the login has reached the password check
    health_answered = threading.Event()  # set by the test once /health has replied
    saw_health: list[bool] = []
    real_verify = passwords.verify_password

    def blocking_verify(password: str, password_hash: str) -> bool:
        entered.set()
        # If this ran on the event loop, /health could never answer and this would time out.
        saw_health.append(health_answered.wait(WAIT_SECONDS))
        return real_verify(password, password_hash)

    monkeypatch.setattr(passwords, "verify_password", blocking_verify)
    login = asyncio.ensure_future(api.call(
        "POST", "/api/v1/auth/login", {"email": "amy@example.com", "password": "password123"}))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, entered.wait, WAIT_SECONDS), "login never started"

    status, parsed, _ = await api.call("GET", "/health")
    assert status == 200 and parsed["status"] == "ok"
    assert not login.done(), "the login finished before /health answered"
    health_answered.set()

    status, parsed, _ = await login
    assert status == 200 and parsed["data"]["user"]["email"] == "amy@example.com"
    assert saw_health == [True]


@pytest.mark.gen_test(timeout=30)
async def test_parallel_logins_do_not_serialise_on_the_loop(api, monkeypatch):
    """Two logins blocked in the password check at the same time both complete once released."""
    await api.register(email="amy@example.com")
    await api.register(email="bob@example.com")
    both_inside = threading.Barrier(2, timeout=WAIT_SECONDS)
    real_verify = passwords.verify_password

    def verify_together(password: str, password_hash: str) -> bool:
        both_inside.wait()  # only returns once the other login is inside too
        return real_verify(password, password_hash)

    monkeypatch.setattr(passwords, "verify_password", verify_together)
    results = await asyncio.gather(*(
        api.call("POST", "/api/v1/auth/login", {"email": email, "password": "password123"})
        for email in ("amy@example.com", "bob@example.com")))
    assert [status for status, _, _ in results] == [200, 200]
