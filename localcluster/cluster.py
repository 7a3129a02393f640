"""A local cluster: PostgreSQL, Redis, N server nodes and nginx, started and stopped as one."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from dataclasses import dataclass, field

from localcluster.nginx import Nginx, install_nginx
from localcluster.nodes import Node
from localcluster.procs import free_port, port_open
from localcluster.services import (
    PrivateRedis,
    ServiceError,
    create_database,
    drop_database,
    ensure_postgres,
    redis_reachable,
    stop_postgres,
    with_database,
)

__all__ = ["ClusterConfig", "LocalCluster", "ServiceError"]

MACHINE_REDIS = "redis://127.0.0.1:6379/0"
MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class ClusterConfig:
    """What a local cluster is made of; ports 0 mean free ones."""

    workdir: str
    nodes: int = 3
    port: int = 8000  # nginx
    node_ports: list[int] = field(default_factory=list)  # empty: free ports
    broker: str = "redis"
    redis_url: str = ""  # empty: the machine's Redis if it answers, else a private one
    redis_prefix: str = "events"
    postgres_url: str = MACHINE_POSTGRES  # a server and a database to connect for admin work
    database: str = "events_cluster"  # created on that server if missing
    drop_database: bool = False  # drop it when the cluster stops (tests)
    jwt_secret: str = ""  # empty: generated once into <workdir>/jwt_secret
    node_options: list[str] = field(default_factory=list)
    nginx_workers: int = 1
    nginx_connections: int = 4096


class LocalCluster:
    """Starts the services it needs, the nodes and nginx; stops exactly what it started."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        os.makedirs(config.workdir, exist_ok=True)
        self.nodes: list[Node] = []
        self.nginx: Nginx | None = None
        self.redis: PrivateRedis | None = None
        self.redis_url = config.redis_url
        self.started_postgres: str | None = None
        self.created_database = False
        self.database_url = with_database(config.postgres_url, config.database)
        self.jwt_secret = config.jwt_secret or self._secret()

    def _secret(self) -> str:
        """Returns the secret kept in the workdir, generating it the first time."""
        path = os.path.join(self.config.workdir, "jwt_secret")
        if os.path.exists(path):
            with open(path, encoding="ascii") as fh:
                return fh.read().strip()
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(value)
        return value

    @property
    def url(self) -> str:
        """Returns the URL clients use (nginx)."""
        assert self.nginx is not None
        return self.nginx.url

    def node_options(self) -> list[str]:
        """Returns the options every node shares (database, secret, broker, trusted proxy)."""
        opts = ["--database-url", self.database_url, "--trusted-proxies", "127.0.0.1"]
        if self.config.broker != "memory":
            opts += ["--broker", self.config.broker, "--redis-url", self.redis_url,
                     "--redis-prefix", self.config.redis_prefix]
        return opts + self.config.node_options

    def start(self, say=print) -> None:
        """Starts everything in order; on failure stops what was started and re-raises."""
        try:
            self._start_services(say)
            self._start_nodes(say)
            self._start_nginx(say)
        except BaseException:
            self.stop(say=lambda _text: None)
            raise

    def _start_services(self, say) -> None:
        """PostgreSQL (started if down) with the cluster's database; Redis (private if none)."""
        self.started_postgres = ensure_postgres(self.config.postgres_url)
        if self.started_postgres:
            say(f"started PostgreSQL {self.started_postgres} (pg_ctlcluster)")
        self.created_database = create_database(self.config.postgres_url, self.config.database)
        say(f"database {self.database_url}"
            + (" (created)" if self.created_database else " (exists)"))
        if self.config.broker == "memory":
            return
        if not self.redis_url:
            if redis_reachable(MACHINE_REDIS):
                self.redis_url = MACHINE_REDIS
            else:
                self.redis = PrivateRedis(os.path.join(self.config.workdir, "redis"))
                self.redis.start()
                self.redis_url = self.redis.url
                say(f"started redis-server on port {self.redis.port}")
        elif not redis_reachable(self.redis_url):
            raise ServiceError(f"no Redis answers at {self.redis_url}")
        say(f"redis {self.redis_url}, key prefix {self.config.redis_prefix!r}")

    def _start_nodes(self, say) -> None:
        """Starts the nodes: the first alone (it creates the tables), then the others."""
        cfg = self.config
        ports = cfg.node_ports or [free_port() for _ in range(cfg.nodes)]
        env = {"JWT_SECRET": self.jwt_secret}
        for i, port in enumerate(ports[:cfg.nodes]):
            if port_open("127.0.0.1", port):
                raise ServiceError(f"port {port} is in use (node {i})")
            self.nodes.append(Node(i, port, cfg.workdir, self.node_options(), env=env))
        self.nodes[0].start()
        self.nodes[0].wait_ready()
        for node in self.nodes[1:]:
            node.start()
        for node in self.nodes[1:]:
            node.wait_ready()
        say("nodes " + ", ".join(n.url for n in self.nodes))

    def _start_nginx(self, say) -> None:
        """Installs nginx if missing, then runs it in front of the nodes."""
        cfg = self.config
        port = cfg.port or free_port()
        if port_open("127.0.0.1", port):
            raise ServiceError(f"port {port} is in use (nginx)")
        binary = install_nginx()
        self.nginx = Nginx(os.path.join(cfg.workdir, "nginx"), port,
                           [n.address for n in self.nodes], binary, cfg.nginx_workers,
                           cfg.nginx_connections)
        self.nginx.start()
        say(f"nginx {self.nginx.url} -> {len(self.nodes)} nodes")

    def stop(self, say=print) -> None:
        """Stops nginx, the nodes (SIGTERM), then what this cluster started of the services."""
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        for node in self.nodes:  # all drain at once; then each is waited for
            node.child.send(signal.SIGTERM)
        for node in self.nodes:
            code = node.stop()
            say(f"node {node.index} stopped ({code})")
        self.nodes = []
        if self.redis is not None:
            self.redis.stop()
            say("redis-server stopped")
            self.redis = None
        if self.config.drop_database:
            with contextlib.suppress(Exception):
                drop_database(self.config.postgres_url, self.config.database)
        if self.started_postgres:
            stop_postgres(self.started_postgres)
            say(f"PostgreSQL {self.started_postgres} stopped")
            self.started_postgres = None
