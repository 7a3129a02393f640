"""Start-up checks of the machine: the listening sockets and the data directory.

Each failure is a ConfigError whose message is one line naming the option to change; main.py
prints it and exits 2 before anything is written (docs/troubleshooting.md).
"""

from __future__ import annotations

import errno
import os
import socket

from tornado.netutil import bind_sockets

from config import ConfigError

__all__ = ["listen", "check_directory"]


def listen(port: int, address: str, option: str, backlog: int,
           reuse_port: bool = False) -> list[socket.socket]:
    """Binds and listens on address:port, or raises ConfigError naming `option`.

    The sockets are bound before anything else is done, so a port in use is found before a
    secret or a database file is written; the server is then handed these very sockets.
    """
    try:
        return bind_sockets(port, address or None, backlog=backlog, reuse_port=reuse_port)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve the address {address!r} ({exc.strerror}): "
                          "choose another with --address") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is in use: choose another with {option}") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"port {port} needs privileges to listen on (permission denied): "
                              f"choose a port above 1023 with {option}") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"cannot listen on {address}: no such address on this machine: "
                              "choose another with --address") from None
        raise ConfigError(f"cannot listen on {address}:{port} ({exc.strerror}): "
                          f"check {option} and --address") from None


def check_directory(path: str, option: str) -> None:
    """Creates the directory path if missing and checks it is writable, or raises ConfigError.

    Only the directory itself is made: no file is written until every check has passed.
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot create the directory {path} ({reason}): "
                          f"choose another with {option}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"the directory {path} is not writable: "
                          f"choose another with {option} or fix its permissions")
