"""A page on a second origin, in real Chromium, logs in over REST and opens /ws: it works when
--cors-origins lists that origin, and the browser refuses both when it does not."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import tornado.httpserver
import tornado.web
from test_browser import chromium, open_page, sqlite_only
from tornado.testing import bind_unused_port

# Served by the second origin: logs in, reads the profile (a preflighted request, for its
# Authorization header) and opens the socket, reporting each step's outcome.
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>other origin</title></head>
<body><script>
window.tryServer = async (api, email, password, fallbackToken) => {
  const out = {};
  let token = fallbackToken;
  try {
    const login = await fetch(api + "/api/v1/auth/login", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({email, password})});
    out.login = login.status;
    token = (await login.json()).data.access_token;
    const me = await fetch(api + "/api/v1/users/me",
                           {headers: {"Authorization": "Bearer " + token}});
    out.me = (await me.json()).data.email;
  } catch (error) {
    out.fetchError = error.name;
  }
  out.socket = await new Promise((resolve) => {
    const ws = new WebSocket(api.replace("http:", "ws:") + "/ws?token=" + token);
    ws.onmessage = (event) => { resolve(JSON.parse(event.data).type); ws.close(); };
    ws.onerror = () => resolve("error");
  });
  return out;
};
</script></body></html>"""


class PageHandler(tornado.web.RequestHandler):
    """The second origin's only page."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.write(PAGE)


@pytest.fixture
def second_origin():
    """A listening socket for the second origin's server, and that origin."""
    sock, port = bind_unused_port()
    yield sock, f"http://127.0.0.1:{port}"
    sock.close()


@pytest.fixture(params=["allowed", "refused"])
def settings(settings, request, second_origin):
    """The server's settings with the second origin in --cors-origins, or not."""
    allowed = (second_origin[1],) if request.param == "allowed" else ()
    return replace(settings, cors_origins=allowed)


@sqlite_only
@pytest.mark.gen_test(timeout=90)
async def test_page_on_another_origin_logs_in_and_connects_only_when_allowed(
        api, settings, second_origin, caplog):
    """Listed in --cors-origins, the page's login, preflighted profile read and socket all
    work; not listed, the browser blocks the fetch (CORS) and the socket is refused."""
    sock, origin = second_origin
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/", PageHandler)]))
    server.add_sockets([sock])
    email = "cross@example.com"
    user = await api.register(email=email)
    api_url = api.base_url.replace("localhost", "127.0.0.1")
    caplog.set_level(logging.WARNING, logger="ws")
    try:
        async with chromium() as context:
            watched = await open_page(context, origin + "/")
            result = await watched.page.evaluate(
                "([api, email, token]) => window.tryServer(api, email, 'password123', token)",
                [api_url, email, user["access_token"]])
    finally:
        server.stop()
    if settings.cors_origins:
        assert result == {"login": 200, "me": email, "socket": "connection.established"}
        assert not [r for r in caplog.records if r.name == "ws"]
    else:
        assert result == {"fetchError": "TypeError", "socket": "error"}
        refusals = [r.getMessage() for r in caplog.records if r.name == "ws"]
        assert len(refusals) == 1 and origin in refusals[0], refusals
        assert api.ctx.hub.clients == {}
