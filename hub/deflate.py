"""permessage-deflate (RFC 7692) compressed once per event: the offer it accepts and the bytes.

The server answers an offer only with `server_no_context_takeover` and
`client_no_context_takeover`: every message is then compressed on its own, with no window
carried over from the previous one, so one compressed payload is valid for every connection
and is made once per event, not once per recipient. The client's side of that also means the
server keeps no inflate state per connection between messages.
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["THRESHOLD", "LEVEL", "AGREED", "accept_offer", "deflate_message"]

# Events whose payload is shorter than this go out uncompressed (RSV1 clear): deflate saves
# little on them and costs a compressor per event.
THRESHOLD = 256
# zlib's level: Tornado's own default for permessage-deflate (gzip level 6).
LEVEL = 6
WINDOW_BITS = 15
EXTENSION = "permessage-deflate"
# What the server answers to an acceptable offer (no values: both are flags).
AGREED: dict[str, Any] = {"server_no_context_takeover": None, "client_no_context_takeover": None}
_KNOWN = frozenset({"server_no_context_takeover", "client_no_context_takeover",
                    "server_max_window_bits", "client_max_window_bits"})
_TAIL = b"\x00\x00\xff\xff"


def _acceptable(params: dict[str, Any]) -> bool:
    """Tells whether one permessage-deflate offer can share the server's compressed payloads.

    A parameter this server does not know, or a client that limits the server's window below
    15 bits (`server_max_window_bits`), cannot: those payloads are made with a 15-bit window.
    `client_max_window_bits` only bounds what the client sends; the server inflates with a
    full window, so any value is fine.
    """
    if not set(params) <= _KNOWN:
        return False
    bits = params.get("server_max_window_bits")
    return bits is None or bits == str(WINDOW_BITS)


def accept_offer(offers: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Returns the extension to answer with: the agreed permessage-deflate, or none at all.

    `offers` are the client's `Sec-WebSocket-Extensions` entries in its order of preference;
    the first acceptable permessage-deflate offer is answered with both no-context-takeover
    parameters. Without one, the connection is uncompressed.
    """
    for name, params in offers:
        if name == EXTENSION and _acceptable(params):
            return [(EXTENSION, dict(AGREED))]
    return []


def deflate_message(payload: bytes) -> bytes:
    """Returns payload compressed as one no-context-takeover permessage-deflate message.

    Raw deflate, flushed with Z_SYNC_FLUSH, without the trailing 00 00 ff ff (RFC 7692 7.2.1).
    """
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(_TAIL) else data
