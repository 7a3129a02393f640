"""The server's base URL and the addresses derived from it (REST routes, the /ws socket)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

__all__ = ["http_base", "api_url", "ws_url"]

_HTTP = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def http_base(url: str) -> str:
    """Returns the server's base URL as http(s)://host[:port][/prefix], without a slash at
    the end; accepts ws(s):// URLs too, with or without the /ws path."""
    parts = urlsplit(url.strip())
    scheme = _HTTP.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"expected an http(s):// or ws(s):// URL, got {url!r}")
    path = parts.path.rstrip("/")
    if parts.scheme.lower() in ("ws", "wss") and path.endswith("/ws"):
        path = path[:-3]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def api_url(base: str, path: str) -> str:
    """Returns the absolute URL of a REST route such as /api/v1/auth/login."""
    return http_base(base) + path


def ws_url(base: str, query: dict[str, str] | None = None) -> str:
    """Returns the ws(s):// URL of the server's /ws socket, with an optional query."""
    parts = urlsplit(http_base(base))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", urlencode(query or {}), ""))
