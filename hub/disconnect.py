"""Every close code and reason the server sends: one table, part of the wire contract."""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "Close",
    "PING_TIMED_OUT",
    "SHUTTING_DOWN",
    "PROTOCOL_ERROR",
    "BINARY_UNSUPPORTED",
    "INVALID_UTF8",
    "TOKEN_EXPIRED",
    "SESSION_REVOKED",
    "ACCOUNT_DELETED",
    "TOO_MANY_MESSAGES",
    "DISCONNECTED",
    "REFRESH_REJECTED",
    "MESSAGE_TOO_BIG",
    "SLOW_CONSUMER",
    "FELL_BEHIND",
    "ALL_CLOSES",
    "LABELLED_CODES",
    "valid_peer_code",
]

# RFC 6455 limits a close reason to 123 bytes (125 minus the two-byte code).
MAX_REASON_BYTES = 123


class Close(NamedTuple):
    """A close code and the reason sent with it."""

    code: int
    reason: str

    def detail(self, text: str) -> Close:
        """Returns this close with `: text` appended to the reason, cut to fit a close frame."""
        reason = f"{self.reason}: {text}".encode()[:MAX_REASON_BYTES]
        return Close(self.code, reason.decode("utf-8", "ignore"))


# Sent by Tornado itself when a client does not answer a ping within --ping-timeout.
PING_TIMED_OUT = Close(1000, "ping timed out")
SHUTTING_DOWN = Close(1001, "server shutting down")
# RFC 6455 protocol errors, sent with a detail ("protocol error: reserved bits set").
PROTOCOL_ERROR = Close(1002, "protocol error")
BINARY_UNSUPPORTED = Close(1003, "binary messages are not supported")
# Sent with a detail: "invalid UTF-8: text message" or "invalid UTF-8: close reason".
INVALID_UTF8 = Close(1007, "invalid UTF-8")
TOKEN_EXPIRED = Close(1008, "token expired")
SESSION_REVOKED = Close(1008, "session revoked")
ACCOUNT_DELETED = Close(1008, "account deleted")
# Sent to a client that keeps sending over 3x its inbound message rate.
TOO_MANY_MESSAGES = Close(1008, "too many messages")
# Sent to every socket of a user on POST /api/v1/server/disconnect.
DISCONNECTED = Close(1008, "disconnected by server")
# Sent with a detail: "refresh rejected: <why>".
REFRESH_REJECTED = Close(1008, "refresh rejected")
# Sent by Tornado itself when an inbound message exceeds the 64 KiB limit.
MESSAGE_TOO_BIG = Close(1009, "message too big")
SLOW_CONSUMER = Close(1013, "slow consumer")
# Sent by a cluster node that missed more of a stream than its log still holds: reconnect
# and resume (the resume then answers whether the missed events can be recovered).
FELL_BEHIND = Close(1013, "node fell behind: reconnect")

ALL_CLOSES: dict[str, Close] = {
    name: value for name, value in globals().items() if isinstance(value, Close)
}

# Codes a peer closes with that the closed-connections metric counts under their own label,
# beside every code in the table above: normal closure, and a client's own internal error.
PEER_CODES = frozenset({1000, 1011})
LABELLED_CODES: frozenset[int] = frozenset(c.code for c in ALL_CLOSES.values()) | PEER_CODES


def valid_peer_code(code: int) -> bool:
    """Tells whether a peer may send code in a close frame (RFC 6455 7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
