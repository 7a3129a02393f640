"""The reconnect storm's client side: the sequence checker, the resume protocol of the storm
clients (fed raw frames), the figures, targets and its docs section. No timing assertions."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from bench.loadgen.client import Stats
from bench.loadgen.storm import Storm, StormClient, StormState, check_sequence, parse_int_after
from bench.report import render_sections
from bench.report.targets import storm_targets
from bench.workloads.storm import peak_rate, storm_figures


def _frame(message: dict) -> bytes:
    """Returns one unmasked server text frame carrying message as compact JSON."""
    payload = json.dumps(message, separators=(",", ":")).encode()
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def _welcome(offset: int, recovered: bool = False, missed: int = 0) -> bytes:
    return _frame({"type": "connection.established", "data": {
        "epoch": "e1", "offset": str(offset), "recovered": recovered, "missed": missed}})


def _alert(seq: int, offset: int) -> bytes:
    return _frame({"type": "system.alert", "data": {"message": "storm",
                                                    "metadata": {"seq": seq}},
                   "offset": str(offset)})


class FakeTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _client(state: StormState) -> StormClient:
    loop = asyncio.new_event_loop()
    try:
        client = StormClient(Stats(), b"", loop.create_future(), state)
    finally:
        loop.close()
    client.transport = FakeTransport()  # type: ignore[assignment]
    client.upgraded = True
    return client


def test_check_sequence_clean_run():
    """Every acknowledged number once and in order: nothing counted."""
    assert check_sequence([0, 1, 2, 3], {0, 1, 2, 3}) == {
        "gaps": 0, "duplicates": 0, "out_of_order": 0, "received": 4}


def test_check_sequence_counts_gap_duplicate_and_disorder():
    """A missing acknowledged number, one received twice, one arriving late are all counted."""
    c = check_sequence([0, 1, 1, 3, 2, 5], {0, 1, 2, 3, 4, 5})
    assert c["gaps"] == 1  # 4
    assert c["duplicates"] == 1  # 1 twice
    assert c["out_of_order"] == 2  # 1 after 1, 2 after 3


def test_check_sequence_allows_unacknowledged_numbers():
    """A publish refused during the restart may arrive once or not at all."""
    assert check_sequence([0, 1, 3], {0, 1, 3})["gaps"] == 0
    assert check_sequence([0, 1, 2, 3], {0, 1, 3}) == {
        "gaps": 0, "duplicates": 0, "out_of_order": 0, "received": 4}


def test_parse_int_after():
    """Reads the digits after a mark, within the bounds given."""
    buf = b'{"metadata":{"seq":42},"offset":"1842"}'
    assert parse_int_after(buf, b'"seq":', 0, len(buf)) == 42
    assert parse_int_after(buf, b'"offset":"', 0, len(buf)) == 1842
    assert parse_int_after(buf, b'"offset":"', 0, 20) is None
    assert parse_int_after(b'"seq":x', b'"seq":', 0, 7) is None


def test_first_connect_takes_the_position_then_events_advance_it():
    """The welcome sets epoch and offset; each alert records its number and offset."""
    state = StormState("tok", "127.0.0.2")
    client = _client(state)
    client.data_received(_welcome(10) + _alert(0, 11) + _alert(1, 12))
    assert (state.epoch, state.offset, list(state.seqs)) == ("e1", 12, [0, 1])
    assert state.recovered == state.not_recovered == 0  # not a resume
    assert state.target() == "/ws?token=tok"
    client.data_received(_frame({"type": "user.updated", "data": {}, "offset": "13"}))
    assert state.offset == 13 and list(state.seqs) == [0, 1]


def test_resume_asks_since_and_counts_the_replay():
    """A resume sends since/epoch; recovered once the `missed` replayed events arrived."""
    state = StormState("tok", "127.0.0.2")
    _client(state).data_received(_welcome(10) + _alert(0, 11))
    state.resuming = True
    assert state.target() == "/ws?token=tok&since=11&epoch=e1"
    client = _client(state)
    client.data_received(_welcome(13, recovered=True, missed=2) + _alert(1, 12))
    assert state.pending == 1 and state.recovered_at == 0.0
    assert state.offset == 12  # the replay advances the position, not the welcome
    client.data_received(_alert(2, 13))
    assert state.pending == 0 and state.recovered_at > 0
    assert (state.recovered, state.missed, state.replayed) == (1, 2, 2)
    assert list(state.seqs) == [0, 1, 2]


def test_resume_not_recovered_takes_the_new_position():
    """recovered false: counted, nothing pending, the welcome's offset becomes the position."""
    state = StormState("tok", "127.0.0.2")
    state.resuming = True
    _client(state).data_received(_welcome(50, recovered=False))
    assert (state.not_recovered, state.pending, state.offset) == (1, 0, 50)


def test_storm_check_sums_clients():
    """Storm.check adds up every client's checks and lists recovery times from the cut."""
    worker = SimpleNamespace(stats=Stats(), deadline=1e12)
    storm = Storm(worker, {"host": "127.0.0.1", "port": 1, "tokens": ["a", "b", "c"]})
    a, b, c = storm.states
    a.epoch = b.epoch = "e1"  # c's first connection failed: it never had a stream
    a.seqs.extend([0, 1, 2])
    b.seqs.extend([0, 2, 2])
    a.recovered, a.recovered_at, a.resumed_at = 1, 105.0, 104.0
    out = storm.check({0, 1, 2}, cut=100.0)
    assert (out["gaps"], out["duplicates"], out["clients_with_gaps"]) == (1, 1, 1)
    assert out["never_connected"] == 1 and out["clients"] == 3
    assert out["recovery_s"] == [5.0] and out["resumed_at"] == [4.0]
    assert storm.status(100.0)["recovered"] == 1


def test_figures_targets_and_section():
    """All recovered within the limit meets the targets; the section shows them, or why S1
    failed."""
    check = {"recovery_s": [2.0, 3.0, 4.0], "resumed_at": [1.5, 2.5, 3.5], "replayed": 30}
    fig = storm_figures(check, 3, listen_s=1.0)
    assert fig["all_recovered"] and fig["all_recovered_s"] == 4.0
    assert fig["replayed_per_s"] == 10.0 and fig["handshakes_per_s"] == 3 / 2.5
    assert peak_rate([0.1, 0.2, 0.7], 0.5) == 4.0
    storm = {"clients": 3, "recovered_clients": 3, "recovery_max_s": 4.0, "gaps": 0,
             "duplicates": 0, "out_of_order": 0, **fig}
    results = {"storm": storm, "config": {"storm_clients": 3}, "mode": "quick"}
    targets = storm_targets(results)
    assert [t["met"] for t in targets] == [True, True, True]
    late = storm_targets({"storm": {**storm, "recovered_clients": 2}})
    assert late[0]["met"] is False
    block = render_sections({**results, "kind": "run"}, "r.json")["storm"]
    assert block.startswith("## Reconnect storm (S1)") and "| 3 |" in block
    assert "| S1 gaps (acknowledged events a client never got) | 0.00 | <= 0.00 | **met** |" in (
        block)
    failed = render_sections({"kind": "run", "storm": {"error": "RuntimeError: x"}}, "r.json")
    assert "S1 failed: RuntimeError: x" in failed["storm"]
