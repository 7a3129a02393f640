"""The /ws upgrade: rate limit, origin, authentication and the wire variant a socket gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tornado.httputil import HTTPHeaders
from tornado.websocket import WebSocketHandler

from edge import internals
from edge.access_log import redact
from edge.protocol import StrictProtocol, strict_protocol
from handlers.base import ErrorEnvelopeMixin, bearer_token
from hub import deflate, protowire
from hub.client import new_client_id
from hub.events import DEFLATE, JSON, NARROW, PROTOBUF
from hub.history import StreamUnavailable
from hub.messages import FEED
from services.errors import (
    ANSWERED,
    AuthenticationError,
    HookDenied,
    HookUnavailable,
    PermissionDenied,
    RateLimited,
    ValidationError,
)
from services.principal import Principal
from services.streams import StreamBusy

if TYPE_CHECKING:
    from context import Context

__all__ = ["HandshakeMixin", "SUBPROTOCOLS", "TooManyConnections"]


class TooManyConnections(RateLimited):
    """The user already has --max-connections-per-user sockets open."""


# Why an upgrade was refused, by the error prepare() raised (a fixed set of metric labels).
_REFUSALS: dict[type, str] = {
    TooManyConnections: "too_many_connections",
    HookDenied: "hook_denied",
    HookUnavailable: "hook_unavailable",
    RateLimited: "rate_limited",
    PermissionDenied: "origin_not_allowed",
    AuthenticationError: "unauthorized",
    ValidationError: "not_websocket",
}
def _take_refusal(stream: Any) -> Exception:
    """Returns and clears the error the upgrade lane refused a request with.

    Raised straight from the call, never kept in a local: a frame holding the error it raised
    would form a reference cycle through the error's traceback.
    """
    refusal, stream.refusal = stream.refusal, None
    return refusal


# The subprotocols a client may ask for (Sec-WebSocket-Protocol); none means JSON.
SUBPROTOCOLS = (protowire.SUBPROTOCOL, protowire.JSON_SUBPROTOCOL)
# Shared by every upgraded socket in place of its own request and response headers.
_NO_HEADERS = HTTPHeaders()
_NO_ARGUMENTS: dict[str, Any] = {}  # read-only once the socket is open


class HandshakeMixin(ErrorEnvelopeMixin, WebSocketHandler):
    """The /ws handler's upgrade: authenticates before it, then sets the socket up.

    Run once per connection; handlers/ws.py EventSocketHandler, which sets every attribute
    used here in initialize(), adds the lifecycle and the hub's Connection interface.
    """

    ctx: Context
    principal: Principal | None
    # The client id chosen before the upgrade when the connect hook is asked about it.
    _client_id: str | None
    # What prepare() refuses an upgrade with: answered with the error envelope, no traceback
    # (the upgrade lane, edge/lane.py, reads this).
    refusals: tuple[type[Exception], ...] = ANSWERED

    async def prepare(self) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if getattr(stream, "refusal", None) is not None:
            raise _take_refusal(stream)  # the upgrade lane refused it (edge/lane.py)
        limiter = self.ctx.ws_connect_limiter
        if limiter is not None:
            wait = await limiter.acheck_and_hit(self.request.remote_ip or "")
            if wait:
                raise RateLimited(f"too many connection attempts; retry in {wait} seconds", wait)
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.ctx.origins.websocket_allows(origin, self.request.host):
            self.ctx.origins.refused(origin, self.request.host)
            raise PermissionDenied(
                f"origin {origin[:200]} is not allowed to open /ws on {self.request.host[:200]}: "
                "add it with --allowed-origins (or --cors-origins, which also allows the REST API)")
        token = self.query("token") or bearer_token(self)
        if not token:
            raise AuthenticationError("missing token: connect to /ws?token=<access token>")
        self.principal = await self.ctx.auth.authenticate(token)
        try:  # a shared log (Redis) may have to be read before open() can recover the feed
            await self.ctx.hub.prepare(FEED, self.query("since"))
        except StreamUnavailable:
            raise StreamBusy("the event stream cannot be read now; retry shortly") from None
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ValidationError("this endpoint only accepts WebSocket upgrade requests")
        limit = self.ctx.settings.max_connections_per_user
        if limit and self.ctx.hub.user_connection_count(self.principal.id) >= limit:
            raise TooManyConnections(f"at most {limit} open connections per user", 5)
        hooks = self.ctx.hooks
        if hooks.wants("connect"):  # after every built-in rule: the hook can only narrow them
            self._client_id = new_client_id()
            await hooks.connect(self.principal, self._client_id, self.transport)

    def query(self, name: str) -> str | None:
        """Returns get_query_argument(name, None): the last value, without surrounding
        whitespace, control characters as spaces. A lone value of printable ASCII (a token,
        an offset) is read as it is, without Tornado's pass over each of its characters
        (a couple of microseconds for a token); any other goes through Tornado's."""
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        if len(values) == 1 and values[0].isascii():  # Tornado decodes every value given
            text = values[0].decode("ascii")
            if text.isprintable():
                return text.strip()
        return self.get_query_argument(name, None)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Counts the refused upgrade by reason, then renders the error envelope."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status = exc.status if isinstance(exc, ANSWERED) else status_code
        reason = _REFUSALS.get(type(exc), "bad_request" if status < 500 else "error")
        self.ctx.metrics.handshake_failed(reason)
        super().write_error(status_code, **kwargs)

    def check_origin(self, origin: str) -> bool:
        """Origins were already checked in prepare(), with an error envelope."""
        return True

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.ctx.settings.websocket_compression else None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Picks the client's first subprotocol this server speaks (none: JSON)."""
        for name in subprotocols:
            if name in SUBPROTOCOLS:
                return name
        return None

    def get_websocket_protocol(self) -> StrictProtocol | None:
        return strict_protocol(self)  # RFC 6455 close codes for protocol errors

    # -- setting up the upgraded socket (open() calls these) -----------------------------

    def _wire_variant(self) -> int:
        """Returns which shared frames this connection gets: its format, deflated or not."""
        variant = PROTOBUF if self.selected_subprotocol == protowire.SUBPROTOCOL else JSON
        if isinstance(self.ws_connection, StrictProtocol) and self.ws_connection.compressing:
            variant |= DEFLATE
            if self.ws_connection.deflate_window < deflate.WINDOW_BITS:
                variant |= NARROW  # the client capped the server's window (hub/deflate.py)
        return variant

    def _send_at_once(self) -> None:
        """Turns Nagle's algorithm off, unless the socket was accepted with it off already
        (edge/server.py: EdgeServer's listening sockets pass TCP_NODELAY on)."""
        stream = self.ws_connection.stream if self.ws_connection else None
        if not getattr(stream, "nodelay", False):
            self.set_nodelay(True)

    def _shed_handshake_state(self) -> None:
        """Drops what only the handshake needed: thousands of idle sockets each keep less.

        Tornado reads the request headers only during the upgrade; the principal
        and the query string (which holds the token) are not needed once the hub has the
        client. The URI keeps its path for log lines, with the token redacted.
        """
        self.principal = None
        self.ui = None  # the template namespace (as RequestHandler's cycle breaking does)
        request = self.request
        request.headers = _NO_HEADERS
        request.query_arguments = request.arguments = _NO_ARGUMENTS
        request.body_arguments = request.files = _NO_ARGUMENTS
        request.uri = redact(request.uri or "")
        request.query = ""
        internals.shed_headers(self, _NO_HEADERS)
