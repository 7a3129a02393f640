"""Token refresh: with 5-second access tokens, one socket outlives many of them (a refresh
token, or a get_token callable, supplies the next; auth.refresh swaps it in); without a way
to renew, the `token expired` close ends the client with AuthError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from liveserver import LiveServer, admin_tokens, unique
from support import FAST, Collector, broadcast, new_user

import events_client

pytestmark = pytest.mark.anyio
TTL = 5


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose access tokens live 5 seconds."""
    live = LiveServer(tmp_path_factory.mktemp("ttl"), f"--access-token-ttl={TTL}")
    live.create_admin()
    yield live.start()
    live.stop()


async def test_socket_outlives_its_access_tokens(short_lived):
    """Two clients, one renewing with its refresh token and one through get_token, keep
    their first socket open for over two token lifetimes and still receive events."""
    url = short_lived.url
    first, second = await new_user(url), await new_user(url)
    bundles: list[events_client.Tokens] = []
    fetched: list[str] = []
    enough = asyncio.Event()
    started = time.monotonic()

    def keep(tokens: events_client.Tokens) -> None:
        bundles.append(tokens)
        if time.monotonic() - started > 2 * TTL + 1:  # the socket's first token is long dead
            enough.set()

    async def log_in_again() -> str:
        tokens = await events_client.login(url, second.user["email"], "password123")
        fetched.append(tokens.access_token)
        return tokens.access_token

    async with events_client.connect(url, token=first.access_token,
                                     refresh_token=first.refresh_token, on_tokens=keep,
                                     backoff=FAST) as renewing, \
            events_client.connect(url, token=second.access_token, get_token=log_in_again,
                                  backoff=FAST) as fetching:
        watches = [Collector(renewing), Collector(fetching)]
        await asyncio.wait_for(enough.wait(), 30)
        assert len(bundles) >= 3
        tag = unique()
        await broadcast(url, (await admin_tokens(url)).access_token, f"{tag}:1")
        for watch in watches:
            await watch.until(lambda watch=watch: watch.alerts(tag) == [1])
            assert len(watch.recoveries()) == 1 and watch.error is None
        assert renewing.connections == 1 and fetching.connections == 1
        assert renewing.access_token == bundles[-1].access_token
        assert renewing.refresh_token == bundles[-1].refresh_token
        assert len(fetched) >= 2 and fetching.access_token == fetched[-1]


async def test_expired_token_without_a_way_to_renew_raises_auth_error(short_lived):
    """Given only an access token, the client is closed with `token expired` when it
    expires, and events() raises AuthError instead of reconnecting with a dead token."""
    user = await new_user(short_lived.url)
    async with events_client.connect(short_lived.url, token=user.access_token,
                                     backoff=FAST) as client:
        watch = Collector(client)
        error = await watch.finished(timeout=3 * TTL)
        assert isinstance(error, events_client.AuthError) and error.status == 401
        assert "token expired" in str(error)
        assert client.connections == 1
