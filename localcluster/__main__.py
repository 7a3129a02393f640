"""`python -m localcluster` (`make cluster`): a local cluster until Ctrl-C.

Starts PostgreSQL and Redis if they are not running (the machine's own are used when they
answer), 3 nodes with `--broker=redis` on loopback ports sharing one database and JWT secret,
and nginx load-balancing `/ws` and the API across them; prints the URL. Ctrl-C or SIGTERM
stops everything it started, and only that.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from localcluster.cluster import MACHINE_POSTGRES, ClusterConfig, LocalCluster
from localcluster.nginx import NginxError
from localcluster.nodes import ROOT, NodeError
from localcluster.services import ServiceError

__all__ = ["main"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Parses the command line."""
    p = argparse.ArgumentParser(prog="make cluster", description=__doc__.split("\n\n")[1])
    p.add_argument("--nodes", type=int, default=3, help="server nodes (default 3)")
    p.add_argument("--port", type=int, default=8000, help="nginx port (default 8000)")
    p.add_argument("--node-port", type=int, default=8001,
                   help="first node's port; the others follow (default 8001)")
    p.add_argument("--broker", choices=("redis", "memory"), default="redis",
                   help="memory: nodes do not share events (a cluster that shows why Redis)")
    p.add_argument("--redis-url", default="",
                   help="default: redis://127.0.0.1:6379/0 if it answers, else a private "
                   "redis-server on a free port")
    p.add_argument("--redis-prefix", default="events", help="key and channel prefix")
    p.add_argument("--postgres-url", default=MACHINE_POSTGRES,
                   help=f"server for the cluster's database (default {MACHINE_POSTGRES})")
    p.add_argument("--database", default="events_cluster",
                   help="database name, created if missing (default events_cluster)")
    p.add_argument("--workdir", default=os.path.join(ROOT, "data", "cluster"),
                   help="logs, node data dirs, the JWT secret and nginx's config")
    p.add_argument("node_options", nargs="*",
                   help="after --: more options for every node, e.g. -- --rate-limits=off")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the cluster until SIGINT or SIGTERM."""
    args = parse(argv)
    config = ClusterConfig(
        workdir=os.path.abspath(args.workdir), nodes=args.nodes, port=args.port,
        node_ports=[args.node_port + i for i in range(args.nodes)], broker=args.broker,
        redis_url=args.redis_url, redis_prefix=args.redis_prefix,
        postgres_url=args.postgres_url, database=args.database,
        node_options=args.node_options)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    cluster = LocalCluster(config)
    say = lambda text: print(f"cluster: {text}", flush=True)  # noqa: E731
    try:
        cluster.start(say)
    except (ServiceError, NodeError, NginxError, OSError) as exc:
        print(f"cluster: could not start: {exc}", file=sys.stderr)
        return 1
    print(f"\n  {cluster.url}/  (dashboard; the API and /ws are under the same URL)\n"
          f"  logs and nginx.conf: {config.workdir}\n"
          "  an admin: .venv/bin/python main.py create-admin "
          f"--database-url={cluster.database_url} "
          "--email=admin@example.com --password=change-me-now\n"
          "  Ctrl-C stops the cluster.\n", flush=True)
    reported: set[int] = set()
    try:
        while not stop.wait(1.0):
            for node in cluster.nodes:
                if not node.child.running() and node.index not in reported:
                    reported.add(node.index)
                    say(f"node {node.index} exited ({node.child.proc.returncode}); "
                        "nginx sends its clients to the others")
    finally:
        say("stopping")
        cluster.stop(say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
