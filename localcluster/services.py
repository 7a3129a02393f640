"""Redis and PostgreSQL for a local cluster: the machine's own when reachable, else started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from urllib.parse import urlparse, urlunparse

from localcluster.procs import Child, free_port, port_open, wait_until

__all__ = ["ServiceError", "PrivateRedis", "redis_reachable", "ensure_postgres",
           "stop_postgres", "create_database", "drop_database", "with_database"]


class ServiceError(RuntimeError):
    """Raised when a service the cluster needs cannot be reached or started."""


def redis_reachable(url: str) -> bool:
    """Tells whether a Redis answers at url (PONG, or a request to authenticate first)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379),
                                      timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class PrivateRedis:
    """A redis-server of our own on a free loopback port: no persistence, stopped with us."""

    def __init__(self, workdir: str, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server not found: install Debian's redis-server package "
                               "or pass --redis-url of a running Redis")
        self.port = port or free_port()
        os.makedirs(workdir, exist_ok=True)
        # In the foreground (not --daemonize): a child we can stop by its id, and that dies
        # with us (PR_SET_PDEATHSIG) if this process is killed.
        self.child = Child("redis", [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", workdir,
                                     "--daemonize", "no"],
                           os.path.join(workdir, "redis.log"))

    @property
    def url(self) -> str:
        """Returns the redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Starts the server and waits until it answers PING."""
        self.child.start()
        if not wait_until(lambda: redis_reachable(self.url) or not self.child.running(), 10) \
                or not self.child.running():
            raise ServiceError(f"redis-server did not start: {self.child.output()[-500:]}")

    def stop(self) -> None:
        """Stops the server (SIGTERM: it exits without saving, since --save is empty)."""
        self.child.stop()


def _pg_cluster_version() -> str | None:
    """Returns the installed PostgreSQL cluster version under /etc/postgresql, if any."""
    try:
        versions = sorted(os.listdir("/etc/postgresql"))
    except OSError:
        return None
    return versions[-1] if versions else None


def ensure_postgres(url: str) -> str | None:
    """Makes sure PostgreSQL at url accepts connections; returns the version of the cluster
    this call started (to stop it later), or None when it was already running."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    if port_open(host, port):
        return None
    version = _pg_cluster_version()
    if version is None or not shutil.which("pg_ctlcluster"):
        raise ServiceError(f"PostgreSQL is not reachable at {host}:{port} and no local "
                           "cluster was found to start (pass --database-url)")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                   check=True, timeout=60)
    if not wait_until(lambda: port_open(host, port), 30, 0.2):
        raise ServiceError(f"PostgreSQL {version} started but does not listen on {port}")
    return version


def stop_postgres(version: str) -> None:
    """Stops the local PostgreSQL cluster that ensure_postgres started."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"],
                   check=False, timeout=60)


def with_database(url: str, name: str) -> str:
    """Returns url pointing at database name on the same server."""
    return urlunparse(urlparse(url)._replace(path="/" + name))


def _admin(url: str, statement: str) -> bool:
    """Runs one autocommit statement; returns False when it failed on a duplicate."""
    import psycopg2
    import psycopg2.errors

    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        return True
    except psycopg2.errors.DuplicateDatabase:
        return False
    finally:
        conn.close()


def create_database(admin_url: str, name: str) -> bool:
    """Creates database name (unless it exists); returns whether it was created."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    return _admin(admin_url, f"CREATE DATABASE {name}")


def drop_database(admin_url: str, name: str) -> None:
    """Drops database name, ending its sessions first."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    _admin(admin_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    _admin(admin_url, f"DROP DATABASE IF EXISTS {name}")
