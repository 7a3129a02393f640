"""nginx in front of a local cluster: found or installed, configured in a temp dir, run as a
foreground child (never the system service)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from localcluster.procs import Child, port_open, wait_until

__all__ = ["NginxError", "find_nginx", "install_nginx", "render_config", "Nginx"]

# The proxy settings of docs/deployment.md (and the README's short form). /ws keeps idle
# sockets open far longer than the server's ping interval (54 s); the API keeps nginx's
# defaults. least_conn spreads long-lived WebSockets by how many each node holds.
CONFIG = """\
# Generated for a local cluster; see docs/deployment.md for the production form.
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
worker_shutdown_timeout 5s;

events {{
    worker_connections {connections};
}}

http {{
    access_log {prefix}/access.log;
    server_tokens off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      "";
    }}

    upstream events_nodes {{
        least_conn;
{servers}
        keepalive 32;
    }}

    server {{
        listen {listen};

        location /ws {{
            proxy_pass http://events_nodes;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
        }}

        location /sse {{
            proxy_pass http://events_nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 3600s;
            proxy_buffering off;
            proxy_cache off;
        }}

        location / {{
            proxy_pass http://events_nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 75s;
        }}
    }}
}}
"""


class NginxError(RuntimeError):
    """Raised when nginx cannot be found, installed or started."""


def find_nginx() -> str | None:
    """Returns the nginx binary's path, or None (Debian puts it in /usr/sbin)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def install_nginx() -> str:
    """Installs Debian's nginx package with apt-get (needs root); returns the binary's path.

    Installing may start the distribution's service on port 80; the cluster never uses it.
    """
    if find_nginx():
        return find_nginx()  # type: ignore[return-value]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NginxError("nginx is not installed; install it with "
                         "`sudo apt-get install nginx` (Debian's package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise NginxError(f"{' '.join(argv)} failed: {result.stderr.strip()[-300:]}")
    path = find_nginx()
    if path is None:
        raise NginxError("apt-get installed nginx but no nginx binary was found")
    return path


def render_config(listen: str, upstreams: list[str], prefix: str, workers: int = 1,
                  connections: int = 4096) -> str:
    """Returns an nginx.conf that proxies listen to the upstream addresses (host:port)."""
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=2s;" for u in upstreams)
    return CONFIG.format(workers=workers, nofile=connections + 64, prefix=prefix,
                         connections=connections, servers=servers, listen=listen)


class Nginx:
    """nginx with a generated config in its own directory, as a foreground child."""

    def __init__(self, prefix: str, port: int, upstreams: list[str], binary: str,
                 workers: int = 1, connections: int = 4096, host: str = "127.0.0.1") -> None:
        self.prefix, self.port, self.host = prefix, port, host
        os.makedirs(prefix, exist_ok=True)
        self.conf = os.path.join(prefix, "nginx.conf")
        with open(self.conf, "w", encoding="utf-8") as fh:
            fh.write(render_config(f"{host}:{port}", upstreams, prefix, workers, connections))
        # -e: the error log before the config is read (else /var/log/nginx/error.log).
        self.child = Child("nginx", [binary, "-p", prefix, "-c", self.conf,
                                     "-e", os.path.join(prefix, "error.log")],
                           os.path.join(prefix, "stderr.log"))

    @property
    def url(self) -> str:
        """Returns the http:// URL nginx serves."""
        return f"http://{self.host}:{self.port}"

    def test_config(self) -> None:
        """Checks the generated config with `nginx -t`."""
        result = subprocess.run([*self.child.argv, "-t"], capture_output=True, text=True,
                                timeout=30)
        if result.returncode != 0:
            raise NginxError(f"nginx -t failed: {result.stderr.strip()[-500:]}")

    def start(self) -> None:
        """Starts nginx and waits until it listens."""
        self.test_config()
        self.child.start()
        if not wait_until(lambda: port_open(self.host, self.port) or not self.child.running(),
                          15) or not self.child.running():
            raise NginxError(f"nginx did not start: {self.error_log()[-500:]}")

    def error_log(self) -> str:
        """Returns nginx's error log so far."""
        path = os.path.join(self.prefix, "error.log")
        if not os.path.exists(path):
            return self.child.output()
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self) -> None:
        """Stops nginx with SIGTERM (fast shutdown: open WebSockets are cut, and the clients
        of a real deployment would reconnect to another proxy)."""
        self.child.stop(signal.SIGTERM, grace=10.0)
