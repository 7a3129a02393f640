"""permessage-deflate compressed once per event: the handshake answer, the bytes, the sharing."""

from __future__ import annotations

import zlib

import pytest

from hub import deflate
from hub.events import DEFLATE, JSON, NARROW, PROTOBUF, Event, EventType

AGREED = [("permessage-deflate", deflate.AGREED)]


def inflate(payload: bytes) -> bytes:
    """Inflates a permessage-deflate payload the way a client does (RFC 7692 7.2.2)."""
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def payload_of(frame: bytes) -> bytes:
    """Returns an unmasked server frame's payload."""
    length = frame[1] & 0x7F
    return frame[{126: 4, 127: 10}.get(length, 2):]


def alert(size: int) -> Event:
    return Event(EventType.SYSTEM_ALERT, {"message": "x" * size, "priority": "normal",
                                          "metadata": {}, "sent_by": 1})


@pytest.mark.parametrize("offer", [
    {},  # plain "permessage-deflate"
    {"client_max_window_bits": None},  # what Chromium, Node ws and websockets offer
    {"client_max_window_bits": "12"},
    {"server_no_context_takeover": None, "client_no_context_takeover": None},
])
def test_acceptable_offer_is_answered_with_both_no_context_takeover_flags(offer):
    """Any offer the shared payloads can serve gets server_ and client_no_context_takeover."""
    assert deflate.accept_offer([("permessage-deflate", offer)]) == AGREED


@pytest.mark.parametrize("bits", ["9", "10", "14", "15"])
def test_offer_capping_the_server_window_is_accepted_with_its_cap(bits):
    """server_max_window_bits from 9 to 15 is accepted by answering it (RFC 7692 7.1.2.1)."""
    offer = {"server_max_window_bits": bits, "client_max_window_bits": None}
    assert deflate.accept_offer([("permessage-deflate", offer)]) == [
        ("permessage-deflate", {**deflate.AGREED, "server_max_window_bits": bits})]


@pytest.mark.parametrize("offers", [
    [("permessage-deflate", {"server_max_window_bits": "8"})],  # zlib cannot keep to it
    [("permessage-deflate", {"server_max_window_bits": None})],  # the value is required
    [("permessage-deflate", {"server_max_window_bits": "09"})],  # no leading zeros
    [("permessage-deflate", {"server_max_window_bits": "16"})],
    [("permessage-deflate", {"mystery": "1"})],
    [("x-webkit-deflate-frame", {})],
    [],
])
def test_offer_the_server_cannot_serve_leaves_the_connection_uncompressed(offers):
    """An 8-bit or malformed server window, an unknown parameter or another extension: no
    compression."""
    assert deflate.accept_offer(offers) == []


def test_first_acceptable_offer_wins_over_an_unacceptable_preferred_one():
    """A client's fallback offer is taken when its preferred one asks for an 8-bit window."""
    offers = [("permessage-deflate", {"server_max_window_bits": "8"}),
              ("permessage-deflate", {"client_max_window_bits": None})]
    assert deflate.accept_offer(offers) == AGREED


def test_deflate_message_is_raw_deflate_without_the_sync_tail():
    """The payload inflates back exactly and does not end with 00 00 ff ff."""
    payload = b'{"type":"system.alert","data":{"message":"' + b"abc" * 400 + b'"}}'
    packed = deflate.deflate_message(payload)
    assert not packed.endswith(b"\x00\x00\xff\xff")
    assert len(packed) < len(payload) // 4
    assert inflate(packed) == payload


def test_event_above_threshold_gets_one_compressed_frame_with_rsv1():
    """A large event's deflate variant is RSV1-set text, inflating to the JSON text."""
    encoded = alert(400).encode()
    frame = encoded.frame_for(DEFLATE)
    assert frame[0] == 0xC1  # FIN | RSV1 | text
    assert frame is encoded.frame_for(DEFLATE)  # made once, then shared
    assert inflate(payload_of(frame)) == encoded.payload
    assert encoded.frame[0] == 0x81 and encoded.frame is not frame


def test_event_below_threshold_shares_the_plain_frame():
    """A small event's deflate variant is the uncompressed frame itself, RSV1 clear."""
    encoded = alert(10).encode()
    assert len(encoded.payload) < deflate.THRESHOLD
    assert encoded.frame_for(DEFLATE) is encoded.frame_for(JSON)
    assert encoded.frame[0] == 0x81


def test_protobuf_variants_are_binary_frames_compressed_from_the_threshold():
    """Protobuf frames are binary (0x82); a large one is deflated with RSV1 (0xC2)."""
    small, large = alert(10).encode(), alert(600).encode()
    assert small.frame_for(PROTOBUF)[0] == 0x82
    assert small.frame_for(PROTOBUF | DEFLATE) is small.frame_for(PROTOBUF)
    frame = large.frame_for(PROTOBUF | DEFLATE)
    assert frame[0] == 0xC2
    assert inflate(payload_of(frame)) == large.protobuf


def test_narrow_variant_is_deflated_once_with_a_9_bit_window():
    """A connection that capped the server's window gets the event deflated with 9 bits:
    it inflates with a 9-bit window, and is made once for every such connection."""
    encoded = alert(2000).encode()
    frame = encoded.frame_for(DEFLATE | NARROW)
    assert frame[0] == 0xC1 and frame is encoded.frame_for(DEFLATE | NARROW)
    assert frame is not encoded.frame_for(DEFLATE)
    tail = b"\x00\x00\xff\xff"
    assert zlib.decompressobj(-9).decompress(payload_of(frame) + tail) == encoded.payload
    small = alert(10).encode()
    assert small.frame_for(PROTOBUF | DEFLATE | NARROW) is small.frame_for(PROTOBUF)


def test_a_variant_nobody_asks_for_is_never_made(monkeypatch):
    """Only JSON frames: no protobuf encoding and no compression happen at all."""
    calls = []
    monkeypatch.setattr(deflate, "deflate_message", lambda p, bits=15: calls.append(p) or b"")
    encoded = alert(1000).encode()
    encoded.frame_for(JSON)
    assert encoded.frames[PROTOBUF] is None and encoded._protobuf is None
    assert calls == []
    encoded.frame_for(PROTOBUF)
    assert encoded._json is not None  # JSON was asked for first; protobuf did not need it
    fresh = alert(1000).encode()
    fresh.frame_for(PROTOBUF)
    assert fresh._json is None  # a protobuf-only audience never serialises JSON
