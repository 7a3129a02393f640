"""Settings of a benchmark run: its sizes (modes), cores, limits, and the progress clock."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["ROOT", "SECRET", "TOKEN_TTL", "NOFILE", "SERVER_CORE", "CLIENT_CORE",
           "PAIRED_TABS", "PING_INTERVAL", "PING_TIMEOUT", "SOURCES", "SERVERS", "ROOM_SERVERS",
           "Mode", "MODES", "Clock"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-" + "s" * 40
TOKEN_TTL = 3600
NOFILE = 20000
SERVER_CORE = 0
CLIENT_CORE = 1
# A user's connections in the paired H and R rounds, the handshake target's measure: the first
# tab misses the session cache and the JWT memo, the others find them (W1 opens Mode.tabs).
PAIRED_TABS = 3
PING_INTERVAL = 300.0  # the same for every server: no ping storms inside a measurement
PING_TIMEOUT = 60.0
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]  # client source addresses: ports never run out
# "floor" is a reference, not a peer: a bare handshake and send() loop (floor_server.py).
SERVERS = ("product", "websockets", "tornado", "node", "floor")
ROOM_SERVERS = ("product", "socketio", "socketio-node")  # the rooms workload's servers


@dataclass(frozen=True)
class Mode:
    """Sizes of one run."""

    name: str
    users: int  # bystander users; connections = users * tabs
    tabs: int
    workers: int
    w2_broadcasts: int
    w3_sends: int
    w3_few: int  # bystanders connected in the W3 "few" phase
    w4_broadcasts: int
    w4_pad: int  # bytes of padding in W4 alerts (slow readers fill their buffers sooner)
    w4_max_seconds: float
    w5_broadcasts: int
    w5_logins: int  # concurrent login loops
    budget_seconds: float
    rooms: int = 200  # rooms workload: rooms x members sockets, one room each
    members: int = 50
    room_rate: float = 60.0  # publishes per second over all rooms (python-socketio must keep up)
    room_seconds: float = 30.0  # how long members publish
    iso_sends: int = 500  # publishes to the small room, per bystander count (5 rounds)
    iso_few: int = 10  # bystanders in other rooms in the "few" phase
    rooms_budget_seconds: float = 240.0
    storm_clients: int = 10_000  # reconnect storm: clients cut at once
    storm_rate: float = 2.0  # numbered feed events per second (x clients: ~20k deliveries/s)
    storm_before: float = 4.0  # seconds of events before the cut
    storm_after: float = 3.0  # seconds of events after every client has resumed
    storm_timeout: float = 40.0  # give up waiting for the resumes after this long
    storm_budget_seconds: float = 150.0
    cluster_broker_rounds: int = 2  # C1: ABBA rounds, memory vs redis
    cluster_broker_phases: int = 3  # W2 phases per start
    cluster_clients: int = 5000  # C2: clients on each of the two nodes
    cluster_broadcasts: int = 40
    cluster_kill_clients: int = 4000  # C3: clients through nginx when node A is killed
    cluster_kill_rate: float = 5.0  # C3: numbered alerts per second (x clients: ~20k msgs/s)
    cluster_budget_seconds: float = 600.0
    workers_clients: int = 5000  # C4: clients per start of --workers 1 and of --workers 2
    workers_broadcasts: int = 40  # C4: alerts to all of them, 4 in flight
    burst_events: int = 20  # burst workload: alerts published in one IOLoop iteration
    bursts: int = 5

    @property
    def connections(self) -> int:
        """Returns the number of bystander connections (users times tabs)."""
        return self.users * self.tabs


MODES = {
    "full": Mode("full", users=1000, tabs=10, workers=4, w2_broadcasts=40, w3_sends=300, w3_few=10,
                 w4_broadcasts=300, w4_pad=512, w4_max_seconds=50.0, w5_broadcasts=40,
                 w5_logins=16, budget_seconds=560.0),
    "quick": Mode("quick", users=200, tabs=10, workers=2, w2_broadcasts=20, w3_sends=100,
                  w3_few=10, w4_broadcasts=320, w4_pad=512, w4_max_seconds=10.0,
                  w5_broadcasts=20, w5_logins=8, budget_seconds=110.0, rooms=20, members=20,
                  room_rate=100.0, room_seconds=6.0, iso_sends=150, rooms_budget_seconds=120.0,
                  storm_clients=1500, storm_rate=10.0, storm_budget_seconds=90.0,
                  cluster_broker_rounds=1, cluster_broker_phases=2, cluster_clients=1000,
                  cluster_broadcasts=20, cluster_kill_clients=1000, cluster_kill_rate=10.0,
                  cluster_budget_seconds=240.0, workers_clients=600, workers_broadcasts=10),
}


class Clock:
    """Progress lines stamped with the time since the run started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        """Returns the seconds since the run started."""
        return time.monotonic() - self.start

    def say(self, text: str) -> None:
        """Prints one progress line stamped with the elapsed time."""
        print(f"[{self.elapsed():6.1f}s] {text}", flush=True)
