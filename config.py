"""Builds the server's Settings from command-line flags and environment variables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = ["Settings", "ConfigError", "parse_args", "build_parser"]


class ConfigError(ValueError):
    """Raised when an option has a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know at start-up; nothing else reads os.environ."""

    port: int = 8080
    address: str = "127.0.0.1"
    data_dir: str = "data"
    database_url: str = ""  # empty means sqlite:///<data_dir>/app.db
    jwt_secret: str = ""  # empty means generated once into <data_dir>/jwt_secret
    access_token_ttl: int = 900
    refresh_token_ttl: int = 7 * 24 * 3600
    rate_limits: bool = True
    debug: bool = False
    allowed_origins: tuple[str, ...] = ()  # empty means same origin only
    ping_interval: float = 54.0
    ping_timeout: float = 6.0
    max_connections_per_user: int = 0  # 0 means unlimited
    socket_send_buffer: int = 256 * 1024  # SO_SNDBUF per WebSocket; 0 leaves it to the kernel
    ws_connect_rate: int = 120  # WebSocket connection attempts per IP per minute
    websocket_compression: bool = False
    health_interval: float = 5.0
    db_workers: int = 4
    hash_workers: int = 2
    max_body_size: int = 1024 * 1024
    max_message_size: int = 64 * 1024
    issuer: str = "events-server"
    audience: str = "events-server"

    @property
    def effective_database_url(self) -> str:
        """Returns the database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return "sqlite:///" + os.path.join(self.data_dir, "app.db")


def _number(cast: type, low: float, high: float | None = None) -> Callable[[str], Any]:
    """Returns an argparse type that parses a number within [low, high]."""
    what = "a whole number" if cast is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"expected {what} {bounds}, got {value}")
        return value

    return parse


_positive_int = _number(int, 1)
_non_negative_int = _number(int, 0)
_port = _number(int, 0, 65535)
_positive_float = _number(float, 0.001)


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected 'on' or 'off', got {text!r}")


def _database_url(text: str) -> str:
    if text and not text.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError(
            f"expected sqlite:///path or postgresql://user@host/db, got {text!r}"
        )
    return text


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())


# (flag, env var, type, default, help); the single table both parsers read.
_SERVE_OPTIONS: list[tuple[str, str, object, object, str]] = [
    ("--port", "PORT", _port, 8080, "TCP port to listen on (default 8080)"),
    ("--address", "ADDRESS", str, "127.0.0.1", "address to bind (default 127.0.0.1)"),
    ("--allowed-origins", "ALLOWED_ORIGINS", _origins, (),
     "comma-separated Origins allowed to open /ws (default: same origin only)"),
    ("--access-token-ttl", "ACCESS_TOKEN_TTL", _positive_int, 900,
     "access token lifetime in seconds (default 900)"),
    ("--refresh-token-ttl", "REFRESH_TOKEN_TTL", _positive_int, 7 * 24 * 3600,
     "refresh token lifetime in seconds (default 604800, 7 days)"),
    ("--rate-limits", "RATE_LIMITS", _on_off, True,
     "on|off: login throttling and per-IP limits (default on; off is for benchmarks)"),
    ("--ping-interval", "PING_INTERVAL", _positive_float, 54.0,
     "seconds between WebSocket pings (default 54)"),
    ("--ping-timeout", "PING_TIMEOUT", _positive_float, 6.0,
     "seconds to wait for a pong before dropping the client (default 6; at most the interval)"),
    ("--max-connections-per-user", "MAX_CONNECTIONS_PER_USER", _non_negative_int, 0,
     "open WebSockets allowed per user (default 0, unlimited)"),
    ("--socket-send-buffer", "SOCKET_SEND_BUFFER", _non_negative_int, 256 * 1024,
     "kernel send buffer per WebSocket in bytes (default 262144; 0 = kernel autotuning)"),
    ("--ws-connect-rate", "WS_CONNECT_RATE", _positive_int, 120,
     "WebSocket connection attempts allowed per IP per minute (default 120)"),
    ("--websocket-compression", "WEBSOCKET_COMPRESSION", _on_off, False,
     "on|off: offer permessage-deflate (default off: costs CPU per client)"),
    ("--health-interval", "HEALTH_INTERVAL", _positive_float, 5.0,
     "seconds between database health checks (default 5)"),
    ("--debug", "DEBUG", _on_off, False, "on|off: debug logging and autoreload (default off)"),
]

_DATA_OPTIONS: list[tuple[str, str, object, object, str]] = [
    ("--data-dir", "DATA_DIR", str, "data",
     "directory for the SQLite file and generated secret (default ./data)"),
    ("--database-url", "DATABASE_URL", _database_url, "",
     "sqlite:///path or postgresql://user@host:port/db (default: SQLite in the data dir)"),
    ("--jwt-secret", "JWT_SECRET", str, "",
     "secret for signing tokens (default: generated once into <data-dir>/jwt_secret)"),
    ("--db-workers", "DB_WORKERS", _positive_int, 4,
     "threads for database work (default 4)"),
    ("--hash-workers", "HASH_WORKERS", _positive_int, 2,
     "low-priority threads for password hashing (default 2)"),
]


def _add_options(
    parser: argparse.ArgumentParser,
    options: list[tuple[str, str, object, object, str]],
    environ: Mapping[str, str],
    suppress: bool = False,
) -> None:
    for flag, env, kind, default, text in options:
        # on|off switches may also be given bare: `--debug` means `--debug=on`.
        switch = {"nargs": "?", "const": True, "metavar": "on|off"} if kind is _on_off else {}
        if suppress:  # repeated on a subcommand: only an explicit flag overrides
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text, **switch)
            continue
        value = default
        if env in environ and environ[env] != "":
            try:
                value = kind(environ[env])  # type: ignore[operator]
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(f"{env}: {exc}") from None
        parser.add_argument(flag, type=kind, default=value, help=f"{text} [env {env}]", **switch)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """Returns the CLI parser whose defaults come from the environment."""
    parser = _Parser(
        prog="main.py",
        description="Real-time events server: REST auth and users API plus live WebSocket events.",
        epilog="Commands: serve (default) runs the server; "
        "create-admin --email=E --password=P [--name=N] [--role=admin|superadmin] "
        "creates or promotes an admin and exits.",
    )
    _add_options(parser, _DATA_OPTIONS, environ)
    _add_options(parser, _SERVE_OPTIONS, environ)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (default)")
    admin = sub.add_parser("create-admin", help="create an admin user, or promote an existing one")
    admin.add_argument("--email", required=True, help="the admin's email")
    admin.add_argument("--password", required=True, help="the admin's password (8-128 characters)")
    admin.add_argument("--name", default="Admin", help="display name (default Admin)")
    admin.add_argument("--role", choices=("admin", "superadmin"), default="admin",
                       help="admin or superadmin (default admin)")
    _add_options(admin, _DATA_OPTIONS, environ, suppress=True)
    return parser


def parse_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> tuple[str, Settings, argparse.Namespace]:
    """Parses argv and the environment into (command, Settings, raw namespace)."""
    env = os.environ if environ is None else environ
    parser = build_parser(env)
    args = parser.parse_args(list(argv))
    if args.ping_timeout > args.ping_interval:
        parser.error("--ping-timeout must not exceed --ping-interval")
    settings = Settings(
        port=args.port,
        address=args.address,
        data_dir=args.data_dir,
        database_url=args.database_url,
        jwt_secret=args.jwt_secret,
        access_token_ttl=args.access_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        rate_limits=args.rate_limits,
        debug=args.debug,
        allowed_origins=args.allowed_origins,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_connections_per_user=args.max_connections_per_user,
        socket_send_buffer=args.socket_send_buffer,
        ws_connect_rate=args.ws_connect_rate,
        websocket_compression=args.websocket_compression,
        health_interval=args.health_interval,
        db_workers=args.db_workers,
        hash_workers=args.hash_workers,
    )
    return args.command or "serve", settings, args
