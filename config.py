"""Builds the server's Settings from command-line flags and environment variables."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "VERSION", "Settings", "ConfigError", "parse_args", "build_parser", "option_fields",
    "flag_of", "env_of", "Network", "LOOPBACK", "HOOK_NAMES", "WEBHOOK_EVENTS",
    "FEED_WEBHOOK_EVENTS",
]


# The one place the version is written: pyproject.toml reads it, --version prints it.
VERSION = "3.0.0"


class ConfigError(ValueError):
    """Raised when an option has a value the server cannot use."""


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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _networks(text: str) -> tuple[Network, ...]:
    """Parses comma-separated addresses and CIDRs (`10.0.0.0/8,127.0.0.1`)."""
    nets = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected addresses or CIDRs like 10.0.0.0/8, got {part!r}") from None
    return tuple(nets)


def _hsts(text: str) -> int:
    """Parses on|off or a max-age in seconds into a max-age (0 = off)."""
    lowered = text.strip().lower()
    if lowered in ("on", "true", "yes"):
        return 31536000
    if lowered in ("off", "false", "no"):
        return 0
    return _non_negative_int(lowered)


MIN_SECRET = 32  # characters; auth/jwt.py refuses shorter HS256 secrets too


def _secret(text: str) -> str:
    """Accepts a JWT secret of at least 32 characters, or none (its value never appears in
    errors)."""
    if text and len(text) < MIN_SECRET:
        raise argparse.ArgumentTypeError(
            f"the JWT secret must be at least {MIN_SECRET} characters, got {len(text)}")
    return text


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())


def _http_url(text: str) -> str:
    """Parses an http(s) URL (or the empty string: none)."""
    if text and not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _broker(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("memory", "redis"):
        raise argparse.ArgumentTypeError(f"expected 'memory' or 'redis', got {text!r}")
    return lowered


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(
            f"expected redis://host:port/db, rediss://... or unix:///path, got {text!r}")
    return text


def _redis_prefix(text: str) -> str:
    if not text or any(c.isspace() for c in text) or len(text) > 64:
        raise argparse.ArgumentTypeError(
            f"expected 1-64 characters without spaces, got {text!r}")
    return text


HOOK_NAMES = ("connect", "subscribe", "publish")
# What --webhook-events may name: socket and room events, and the user.* feed events.
WEBHOOK_EVENTS = ("connection.opened", "connection.closed", "presence.joined", "presence.left",
                  "channel.message")
FEED_WEBHOOK_EVENTS = ("user.created", "user.updated", "user.deleted", "user.role.changed")


def _names(text: str) -> list[str]:
    return list(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))


def _hooks(text: str) -> tuple[str, ...]:
    """Parses a subset of connect,subscribe,publish (or none)."""
    names = [n for n in _names(text) if n != "none"]
    for name in names:
        if name not in HOOK_NAMES:
            raise argparse.ArgumentTypeError(
                f"expected any of {','.join(HOOK_NAMES)}, got {name!r}")
    return tuple(n for n in HOOK_NAMES if n in names)


def _webhook_events(text: str) -> tuple[str, ...]:
    """Parses event types to send as webhooks; `user.*` names every user feed event."""
    chosen: list[str] = []
    for name in _names(text):
        if name == "user.*":
            chosen.extend(FEED_WEBHOOK_EVENTS)
        elif name in WEBHOOK_EVENTS or name in FEED_WEBHOOK_EVENTS:
            chosen.append(name)
        else:
            raise argparse.ArgumentTypeError(
                f"expected any of {','.join(WEBHOOK_EVENTS)},user.* or a user.* event, "
                f"got {name!r}")
    return tuple(dict.fromkeys(chosen))


def _hook_secret(text: str) -> str:
    """Accepts a hook secret of at least 16 characters, or none (its value never appears in
    errors)."""
    if text and len(text) < 16:
        raise argparse.ArgumentTypeError(
            f"the hook secret must be at least 16 characters, got {len(text)}")
    return text


def _loop(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("auto", "asyncio", "uvloop"):
        raise argparse.ArgumentTypeError(f"expected auto, asyncio or uvloop, got {text!r}")
    return lowered


def _log_format(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"expected 'text' or 'json', got {text!r}")
    return lowered


def _option(
    default: Any, parse: Callable[[str], Any], help: str, *, data: bool = False
) -> Any:
    """Declares a Settings field that is also a flag and an environment variable.

    The flag is the field's name with dashes (`--db-workers`), the variable its name in upper
    case (`DB_WORKERS`). `data=True` marks options the create-admin command takes too.
    """
    return dataclasses.field(
        default=default, metadata={"parse": parse, "help": help, "data": data}
    )


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know at start-up; nothing else reads os.environ.

    Each option is declared once, here: its name, default, parser and help. The CLI parser,
    the environment lookup and the README's table all follow from these fields.
    """

    data_dir: str = _option(
        "data", str, "directory for the SQLite file and generated secret (default ./data)",
        data=True)
    database_url: str = _option(
        "", _database_url,
        "sqlite:///path or postgresql://user@host:port/db (default: SQLite in the data dir)",
        data=True)
    jwt_secret: str = _option(
        "", _secret,
        "secret for signing tokens, 32+ characters (default: generated once into "
        "<data-dir>/jwt_secret)",
        data=True)
    db_workers: int = _option(4, _positive_int, "threads for database work (default 4)",
                              data=True)
    hash_workers: int = _option(
        2, _positive_int, "low-priority threads for password hashing (default 2)", data=True)
    port: int = _option(8080, _port, "TCP port to listen on (default 8080)")
    address: str = _option("127.0.0.1", str, "address to bind (default 127.0.0.1)")
    allowed_origins: tuple[str, ...] = _option(
        (), _origins, "comma-separated Origins allowed to open /ws (default: same origin only)")
    cors_origins: tuple[str, ...] = _option(
        (), _origins,
        "comma-separated Origins whose pages may call the REST API (CORS) and open /ws; "
        "'*' allows any origin, without credentials (default: none, same origin only)")
    access_token_ttl: int = _option(
        900, _positive_int, "access token lifetime in seconds (default 900)")
    refresh_token_ttl: int = _option(
        7 * 24 * 3600, _positive_int,
        "refresh token lifetime in seconds (default 604800, 7 days)")
    rate_limits: bool = _option(
        True, _on_off,
        "on|off: login throttling and per-IP limits (default on; off is for benchmarks)")
    ping_interval: float = _option(
        54.0, _positive_float, "seconds between WebSocket pings (default 54)")
    sse_ping_interval: float = _option(
        15.0, _positive_float,
        "seconds between the `: ping` comments an SSE stream is sent (default 15)")
    ping_timeout: float = _option(
        6.0, _positive_float,
        "seconds to wait for a pong before dropping the client (default 6; at most the interval)")
    max_connections_per_user: int = _option(
        0, _non_negative_int, "open WebSockets allowed per user (default 0, unlimited)")
    socket_send_buffer: int = _option(
        256 * 1024, _non_negative_int,
        "kernel send buffer per connection in bytes (default 262144; 0 = kernel autotuning)")
    session_cache_ttl: float = _option(
        5.0, _number(float, 0.0, 60.0),
        "seconds a verified session skips the database on later authentications (default 5; "
        "0 = off); revocations clear it at once on every node")
    ws_connect_rate: int = _option(
        120, _positive_int, "WebSocket connection attempts allowed per IP per minute (default 120)")
    websocket_compression: bool = _option(
        False, _on_off,
        "on|off: accept permessage-deflate, each event compressed once (default off)")
    health_interval: float = _option(
        5.0, _positive_float, "seconds between database health checks (default 5)")
    debug: bool = _option(False, _on_off, "on|off: debug logging and autoreload (default off)")
    inbound_rate: float = _option(
        20.0, _positive_float,
        "inbound WebSocket messages allowed per second per connection (default 20)")
    inbound_burst: int = _option(
        50, _positive_int, "inbound messages a connection may send in a burst (default 50)")
    max_subscriptions: int = _option(
        100, _positive_int, "channel subscriptions allowed per connection (default 100)")
    max_rooms_per_user: int = _option(
        20, _positive_int, "rooms one user may own (default 20)")
    message_retention_days: int = _option(
        30, _positive_int,
        "days room messages and published feed events are kept in the database (default 30)",
        data=True)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _option(
        (), _networks,
        "comma-separated proxy addresses/CIDRs whose X-Forwarded-For/X-Real-IP is believed "
        "(default none)")
    max_connections: int = _option(
        0, _non_negative_int,
        "open client sockets allowed (default 0: the fd limit minus headroom)")
    header_timeout: float = _option(
        10.0, _positive_float, "seconds a new connection has to send its request head (default 10)")
    idle_timeout: float = _option(
        60.0, _positive_float,
        "seconds an idle keep-alive connection is kept before the next request (default 60)")
    body_timeout: float = _option(
        30.0, _positive_float, "seconds allowed for reading one request body (default 30)")
    hsts: int = _option(
        0, _hsts, "on|off|SECONDS: send Strict-Transport-Security (only behind TLS; default off)")
    metrics: bool = _option(
        True, _on_off, "on|off: collect Prometheus metrics and serve /metrics (default on)")
    metrics_allow: tuple[Network, ...] = _option(
        LOOPBACK, _networks,
        "comma-separated addresses/CIDRs that may read /metrics without a token "
        "(default 127.0.0.0/8,::1)")
    metrics_port: int = _option(
        0, _port, "serve /metrics only on this port, without auth (default 0: on the main port)")
    log_format: str = _option("text", _log_format, "text|json: log line format (default text)")
    workers: int = _option(
        1, _non_negative_int,
        "server processes sharing the port (SO_REUSEPORT), as one Redis cluster; 0 = one per "
        "core; needs --broker=redis (default 1)")
    worker: int = _option(
        0, _non_negative_int, "this process's number among --workers (set by the parent; "
        "default 0: not a worker)")
    loop: str = _option(
        "auto", _loop, "auto|asyncio|uvloop: the event loop (default auto: uvloop when installed)")
    history_size: int = _option(
        1000, _positive_int, "events kept per stream for recovery after a reconnect (default 1000)")
    history_ttl: float = _option(
        600.0, _positive_float,
        "seconds an event stays recoverable after a reconnect (default 600)")
    broker: str = _option(
        "memory", _broker,
        "memory|redis: memory runs one node; redis lets several nodes act as one (default memory)")
    redis_url: str = _option(
        "redis://127.0.0.1:6379/0", _redis_url,
        "Redis for --broker=redis (default redis://127.0.0.1:6379/0)")
    jwt_jwks_url: str = _option(
        "", _http_url,
        "an identity provider's JWKS URL: its RS256/ES256/EdDSA tokens are accepted "
        "(default none)")
    jwt_public_key_file: str = _option(
        "", str, "a PEM public key file to verify an identity provider's tokens with "
        "(instead of --jwt-jwks-url; default none)")
    jwt_issuer: str = _option(
        "", str, "the `iss` an identity provider's tokens must carry (default: not checked)")
    jwt_audience: str = _option(
        "", str, "the `aud` an identity provider's tokens must carry (default: not checked)")
    jwt_name_claim: str = _option(
        "name", str, "the claim holding a provider user's display name (default name)")
    jwt_email_claim: str = _option(
        "email", str, "the claim holding a provider user's email (default email)")
    jwt_role_claim: str = _option(
        "role", str, "the claim (or dotted path, e.g. realm_access.roles) holding a provider "
        "user's role: admin or user (default role)")
    server_api_rate: float = _option(
        1000.0, _positive_float,
        "server API requests allowed per second per API key, on each node (default 1000)")
    redis_prefix: str = _option(
        "events", _redis_prefix,
        "prefix of every Redis key and channel, so several clusters can share one Redis "
        "(default events)")
    hook_url: str = _option(
        "", _http_url, "the application's URL the permission hooks POST to (default none)")
    hooks: tuple[str, ...] = _option(
        (), _hooks, "which permission hooks to call: any of connect,subscribe,publish "
        "(default none)")
    hook_timeout: float = _option(
        1.0, _positive_float,
        "seconds a permission hook may take, waiting for a free slot included; later it "
        "fails closed (default 1)")
    hook_concurrency: int = _option(
        64, _positive_int, "permission hook requests in flight at once (default 64)")
    hook_secret: str = _option(
        "", _hook_secret, "secret signing every hook and webhook request (default: generated once "
        "into <data-dir>/hook_secret)")
    webhook_url: str = _option(
        "", _http_url, "the application's URL webhooks are POSTed to (default none)")
    webhook_events: tuple[str, ...] = _option(
        WEBHOOK_EVENTS, _webhook_events,
        "event types sent as webhooks (default connection.opened,connection.closed,"
        "presence.joined,presence.left,channel.message; user.* adds the user feed events)")
    webhook_retry_cap: float = _option(
        30.0, _positive_float,
        "longest wait in seconds between two attempts of a webhook (default 30)")
    webhook_max_age: float = _option(
        86400.0, _positive_float,
        "seconds a webhook is retried before it is dropped (default 86400, 24 h)")

    # Fixed by the contract, not options.
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


def option_fields() -> list[dataclasses.Field]:
    """Returns the Settings fields that are command-line options, in declaration order."""
    return [f for f in dataclasses.fields(Settings) if "parse" in f.metadata]


def flag_of(field: dataclasses.Field) -> str:
    """Returns an option's flag: `--` and its name with dashes."""
    return "--" + field.name.replace("_", "-")


def env_of(field: dataclasses.Field) -> str:
    """Returns an option's environment variable: its name in upper case."""
    return field.name.upper()


def _add_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], *, data_only: bool = False
) -> None:
    for f in option_fields():
        if data_only and not f.metadata["data"]:
            continue
        parse, text, env = f.metadata["parse"], f.metadata["help"], env_of(f)
        # on|off switches may also be given bare: `--debug` means `--debug=on`.
        switch = {"nargs": "?", "const": True, "metavar": "on|off"} if parse is _on_off else {}
        if data_only:  # repeated on a subcommand: only an explicit flag overrides
            parser.add_argument(flag_of(f), type=parse, default=argparse.SUPPRESS, help=text,
                                **switch)
            continue
        value = f.default
        if environ.get(env):
            try:
                value = parse(environ[env])
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(f"{env}: {exc}") from None
        parser.add_argument(flag_of(f), type=parse, default=value, help=f"{text} [env {env}]",
                            **switch)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(environ: Mapping[str, str], prog: str = "main.py") -> argparse.ArgumentParser:
    """Returns the CLI parser whose defaults come from the environment."""
    parser = _Parser(
        prog=prog,
        description="Real-time events server: REST auth and users API plus live WebSocket events.",
        epilog="Commands: serve (default) runs the server; "
        "create-admin --email=E [--password=P] [--name=N] [--role=admin|superadmin] "
        "creates or promotes an admin and exits (the password also from ADMIN_PASSWORD, or "
        "asked for); api-key create|list|revoke manages server API keys.",
    )
    parser.add_argument("--version", action="version", version=f"events-server {VERSION}",
                        help="print the version and exit")
    _add_options(parser, environ)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (default)")
    admin = sub.add_parser("create-admin", help="create an admin user, or promote an existing one")
    admin.add_argument("--email", required=True, help="the admin's email")
    admin.add_argument(
        "--password", default=environ.get("ADMIN_PASSWORD") or None,
        help="the admin's password, 8-128 characters [env ADMIN_PASSWORD]; with neither, it "
        "is asked for twice at a terminal (keeps it out of the shell history)")
    admin.add_argument("--name", default="Admin", help="display name (default Admin)")
    admin.add_argument("--role", choices=("admin", "superadmin"), default="admin",
                       help="admin or superadmin (default admin)")
    _add_options(admin, environ, data_only=True)
    keys = sub.add_parser("api-key", help="create, list or revoke server API keys")
    verbs = keys.add_subparsers(dest="key_command", required=True, metavar="create|list|revoke")
    create = verbs.add_parser("create", help="create a key and print it (shown this once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. billing")
    create.add_argument("--scopes", default="publish,notify,presence,history,disconnect",
                        help="comma-separated: publish,notify,presence,history,disconnect "
                        "(default all)")
    create.add_argument("--json", action="store_true", help="print {id, name, scopes, key}")
    listing = verbs.add_parser("list", help="list keys: id, name, scopes, created, last used")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    revoke = verbs.add_parser("revoke", help="revoke a key (every node refuses it within 5 s)")
    revoke.add_argument("id", type=int, help="the key's id (see list)")
    for verb in (create, listing, revoke):
        _add_options(verb, environ, data_only=True)
    return parser


def parse_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None, prog: str = "main.py"
) -> tuple[str, Settings, argparse.Namespace]:
    """Parses argv and the environment into (command, Settings, raw namespace)."""
    env = os.environ if environ is None else environ
    parser = build_parser(env, prog)
    args = parser.parse_args(list(argv))
    if args.ping_timeout > args.ping_interval:
        parser.error("--ping-timeout must not exceed --ping-interval")
    if args.metrics_port and args.metrics_port == args.port:
        parser.error("--metrics-port must differ from --port")
    if args.jwt_jwks_url and args.jwt_public_key_file:
        parser.error("give --jwt-jwks-url or --jwt-public-key-file, not both")
    if args.hooks and not args.hook_url:
        parser.error("--hooks needs --hook-url (where the application answers)")
    if args.workers != 1 and args.broker != "redis":
        parser.error("--workers needs --broker=redis: the workers act as the nodes of one "
                     "cluster (add --broker=redis and --redis-url)")
    settings = Settings(**{f.name: getattr(args, f.name) for f in option_fields()})
    return args.command or "serve", settings, args
