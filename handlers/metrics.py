"""GET /metrics: the Prometheus exposition, for admins, allowed addresses or a metrics port."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from socket import gethostname
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from tornado.httputil import HTTPServerRequest
from tornado.web import HTTPError

from handlers.base import ApiHandler, bearer_token
from services import workermetrics
from services.errors import PermissionDenied

if TYPE_CHECKING:
    from config import Network
    from context import Context

__all__ = ["MetricsHandler", "client_address", "address_allowed"]


def client_address(request: HTTPServerRequest) -> str:
    """Returns the client's address; the one place to switch to trusted-proxy resolution."""
    return request.remote_ip or ""


def address_allowed(address: str, networks: Iterable[Network]) -> bool:
    """Returns True if address lies in any of networks (False for an unparsable address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks if net.version == ip.version)


class MetricsHandler(ApiHandler):
    """Answers the exposition to an admin token or an allowed address, or on the metrics port."""

    def initialize(self, ctx: Context, dedicated: bool = False, internal: bool = False) -> None:
        self.ctx = ctx
        # True on the --metrics-port listener, which serves everyone who can reach it.
        self.dedicated = dedicated or internal
        # True on a --workers worker's loopback listener: its own registry alone.
        self.internal = internal

    async def get(self) -> None:
        settings = self.ctx.settings
        if not self.ctx.metrics.enabled or (settings.metrics_port and not self.dedicated):
            raise HTTPError(404, "no such endpoint: %s", self.request.path)
        allowed = address_allowed(client_address(self.request), settings.metrics_allow)
        if not (self.dedicated or allowed):
            if bearer_token(self) is None:
                raise PermissionDenied(
                    "/metrics is served to admin tokens and to addresses in --metrics-allow")
            await self.admin()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        if not settings.worker or self.internal:
            self.finish(self.ctx.metrics.exposition())
            return
        nodes = (await self.ctx.stats.collect())["nodes"]
        urls = workermetrics.sibling_urls(nodes, gethostname(), settings.port)
        urls.pop(str(settings.worker), None)
        texts = await workermetrics.fetch_all(urls)
        texts[str(settings.worker)] = self.ctx.metrics.exposition().decode("utf-8")
        self.finish(workermetrics.merge(texts))
