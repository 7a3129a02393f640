"""protocol="protobuf": the client speaks events.v1.protobuf with the shipped schema, yields
what a JSON client yields, and resumes the same way; the schema and its generated module
are the server's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from liveserver import ROOT, Gate, admin_tokens, unique
from support import FAST, Collector, broadcast, entry, new_room, new_user

import events_client

PACKAGE = Path(events_client.__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.mark.anyio
async def test_protobuf_client_yields_what_a_json_client_yields(server):
    """Alerts with metadata, room messages, presence and history come out of a protobuf
    client exactly as out of a JSON client (same types, data, offsets and timestamps)."""
    admin, first, second = (await admin_tokens(server.url), await new_user(server.url),
                            await new_user(server.url))
    channel, tag = await new_room(server.url, first.access_token), unique()
    async with events_client.connect(server.url, token=first.access_token) as plain, \
            events_client.connect(server.url, token=second.access_token,
                                  protocol="protobuf") as binary:
        assert binary.link.live is not None
        assert binary.link.live.subprotocol == "events.v1.protobuf"
        watches = {plain: Collector(plain), binary: Collector(binary)}
        rooms = [await plain.subscribe(channel), await binary.subscribe(channel)]
        assert rooms[0].reply == rooms[1].reply
        await broadcast(server.url, admin.access_token, f"{tag}:1", priority="high",
                        metadata={"nested": {"list": [1, "two", None]}, "ok": True})
        reply = await rooms[1].publish({"n": 1, "text": "héllo", "deep": {"x": [1.5]}})
        assert set(reply) == {"channel", "id", "sent_at", "offset"}
        for watch in watches.values():
            await watch.until(lambda w=watch: w.counts(tag, channel) == (1, 1))

        def logged(watch: Collector) -> list[events_client.Event]:
            return [e for e in watch.events if e.offset is not None
                    and (e.channel == channel or e.data.get("message") == f"{tag}:1")]

        assert logged(watches[plain]) == logged(watches[binary])
        assert len(logged(watches[binary])) == 2
        assert await rooms[0].presence() == await rooms[1].presence()
        assert await rooms[0].history(limit=5) == await rooms[1].history(limit=5)
        with pytest.raises(events_client.RequestError) as refused:
            await binary.subscribe("room:no-such-room")
        assert refused.value.code == "unknown_channel"


@pytest.mark.anyio
async def test_protobuf_client_resumes_after_a_cut(server):
    """Cut off while messages are published, a protobuf client recovers them: 1..N once."""
    user = await new_user(server.url)
    channel = await new_room(server.url, user.access_token)
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, protocol="protobuf",
                                  backoff=FAST) as client, \
            events_client.connect(server.url, token=user.access_token) as publisher:
        watch = Collector(client)
        await client.subscribe(channel)
        for n in range(1, 6):
            await publisher.publish(channel, {"n": n})
        await watch.until(lambda: len(watch.messages(channel)) == 5)
        gate.cut()
        for n in range(6, 11):
            await publisher.publish(channel, {"n": n})
        gate.open()
        await watch.until(lambda: len(watch.messages(channel)) == 10)
        assert watch.messages(channel) == list(range(1, 11))
        await watch.until(lambda: len(watch.recoveries()) == 2)
        assert entry(watch.recoveries()[1], channel) == {"channel": channel, "recovered": True,
                                                         "missed": 5}


def test_shipped_schema_is_the_servers():
    """events_client/events.proto is a byte-for-byte copy of the server's proto/events.proto."""
    shipped = (PACKAGE / "events.proto").read_bytes()
    assert shipped == (ROOT / "proto" / "events.proto").read_bytes(), "run `make proto`"


def test_generated_module_is_current(tmp_path):
    """events_client/events_pb2.py and its stub events_pb2.pyi are exactly what the pinned
    protoc makes of events.proto."""
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("grpcio-tools (the client's test extra) is missing")
        pytest.skip("grpcio-tools (the client's test extra) is missing")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PACKAGE}",
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                    str(PACKAGE / "events.proto")], check=True)
    for name in ("events_pb2.py", "events_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        assert fresh == (PACKAGE / name).read_text(), f"{name} is stale: run `make proto`"
