"""permessage-deflate (RFC 7692) compressed once per event: the offer it accepts and the bytes.

The server answers an offer only with `server_no_context_takeover` and
`client_no_context_takeover`: every message is then compressed on its own, with no window
carried over from the previous one, so one compressed payload is valid for every connection
and is made once per event, not once per recipient. The client's side of that also means the
server keeps no inflate state per connection between messages.

A client may cap the server's window (`server_max_window_bits`, RFC 7692 7.1.2.1). At 15 bits
that is the window every payload is made with; from 9 to 14 bits the connection shares the
payloads made with a 9-bit window (NARROW_WINDOW_BITS, which fits under every such cap), made
once per event too, and only when such a client is connected. zlib cannot make raw deflate
with an 8-bit window: that offer is declined.
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["THRESHOLD", "LEVEL", "AGREED", "WINDOW_BITS", "NARROW_WINDOW_BITS", "accept_offer",
           "server_window", "deflate_message"]

# Events whose payload is shorter than this go out uncompressed (RSV1 clear): deflate saves
# little on them and costs a compressor per event.
THRESHOLD = 256
# zlib's level: Tornado's own default for permessage-deflate (gzip level 6).
LEVEL = 6
WINDOW_BITS = 15
# The window of payloads for clients that cap the server's below 15 bits: the smallest zlib
# makes raw deflate with, so it fits under any cap the server accepts.
NARROW_WINDOW_BITS = 9
EXTENSION = "permessage-deflate"
# What the server answers to an acceptable offer (no values: both are flags).
AGREED: dict[str, Any] = {"server_no_context_takeover": None, "client_no_context_takeover": None}
_KNOWN = frozenset({"server_no_context_takeover", "client_no_context_takeover",
                    "server_max_window_bits", "client_max_window_bits"})
_TAIL = b"\x00\x00\xff\xff"


def server_window(params: dict[str, Any]) -> int | None:
    """Returns the server's window, in bits, that one permessage-deflate offer (or the agreed
    answer) allows: 15 without `server_max_window_bits`, its value from 9 to 15, or None for
    an offer the server declines (that parameter without a valid value, or one of 8 bits).

    The value is a decimal integer from 8 to 15 without leading zeros (RFC 7692 7.1.2.1).
    """
    bits = params.get("server_max_window_bits", str(WINDOW_BITS))
    if not isinstance(bits, str) or not bits.isdigit() or bits.startswith("0"):
        return None
    return int(bits) if NARROW_WINDOW_BITS <= int(bits) <= WINDOW_BITS else None


def accept_offer(offers: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Returns the extension to answer with: the agreed permessage-deflate, or none at all.

    `offers` are the client's `Sec-WebSocket-Extensions` entries in its order of preference;
    the first acceptable permessage-deflate offer (only parameters the server knows, and a
    server window it can keep to) is answered with both no-context-takeover parameters, and
    with the offer's `server_max_window_bits` if it has one (accepting that parameter means
    answering with it). `client_max_window_bits` only bounds what the client sends; the server
    inflates with a full window, so any value is fine. Without an acceptable offer, the
    connection is uncompressed.
    """
    for name, params in offers:
        if name != EXTENSION or not set(params) <= _KNOWN:
            continue
        bits = server_window(params)
        if bits is None:
            continue
        if "server_max_window_bits" in params:
            return [(EXTENSION, {**AGREED, "server_max_window_bits": str(bits)})]
        return [(EXTENSION, dict(AGREED))]
    return []


def deflate_message(payload: bytes, window_bits: int = WINDOW_BITS) -> bytes:
    """Returns payload compressed as one no-context-takeover permessage-deflate message.

    Raw deflate with a window of window_bits, flushed with Z_SYNC_FLUSH, without the trailing
    00 00 ff ff (RFC 7692 7.2.1).
    """
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(_TAIL) else data
